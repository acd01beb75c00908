/* A plugin built against another ABI version: the loader must refuse it. */
#include "vigil/plugin.h"

__attribute__((visibility("default"))) extern const struct vigil_plugin vigil_plugin_descriptor;
const struct vigil_plugin vigil_plugin_descriptor = {
	.abi_version = VIGIL_PLUGIN_ABI_VERSION + 41,
	.size = sizeof(struct vigil_plugin),
	.kind = VIGIL_PLUGIN_DETECTOR,
	.name = "bad_abi",
};
