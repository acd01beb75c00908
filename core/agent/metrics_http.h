/* The agent's opt-in metrics listener (`metrics_listen = ADDR:PORT`): a tiny
 * HTTP/1.0 responder inside the agent's loop. GET /metrics only; every request
 * bounded in size and idle time, at most METRICS_HTTP_MAX_CLIENTS at once, one
 * request per connection, never a blocking call. */
#ifndef VIGIL_METRICS_HTTP_H
#define VIGIL_METRICS_HTTP_H

#include <stddef.h>

#include "base/buf.h"
#include "base/loop.h"

#define METRICS_HTTP_MAX_CLIENTS 16
#define METRICS_HTTP_MAX_REQUEST 4096
#define METRICS_HTTP_IDLE_MS 5000

/* Append the exposition to out; 0 or -errno (answered with a 500). */
typedef int (*metrics_http_render)(void *ctx, struct buf *out);

struct metrics_http;

/* Listen on addr ("127.0.0.1:9101", "[::1]:9101": numeric, no name lookup).
 * NULL with the reason in err. */
struct metrics_http *metrics_http_open(struct loop *loop, const char *addr,
				       metrics_http_render render, void *ctx, char *err,
				       size_t errlen);
void metrics_http_close(struct metrics_http *h);

#endif
