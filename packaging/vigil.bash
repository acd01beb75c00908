# bash completion for vigil: subcommands, their flags, and job names (from the
# running agent or the state folder, through `vigil status --json`).

_vigil_jobs()
{
	vigil status --json 2>/dev/null | sed -n 's/^{"name":"\([^"]*\)".*/\1/p'
}

_vigil()
{
	local cur prev cmd words_n
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	local commands="run watch status logs stop check plugins agent reload history metrics forget prune help"
	local detectors="--file --min-size --stable-for --deadline --log --success --failure
		--progress --stall --from --disk --inodes --memory --pressure-interval"
	local policy="--timeout --expected --min-duration --on-timeout --kill-grace --rule
		--on-failure --hook-timeout --notify --name -c --deliver-timeout --state-dir --plugin-dir"
	local retry="--retry --retry-delay --retry-command --before-retry --after --after-any"

	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	cmd=${COMP_WORDS[1]}
	case $prev in
	-c|--config|--log|--file|--pid-file|check)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--conf-dir|--state-dir|--plugin-dir)
		COMPREPLY=($(compgen -d -- "$cur"))
		return ;;
	--on-timeout)
		COMPREPLY=($(compgen -W "notify term kill" -- "$cur"))
		return ;;
	--expected|--min-duration)
		COMPREPLY=($(compgen -W "auto" -- "$cur"))
		return ;;
	--from)
		COMPREPLY=($(compgen -W "start end" -- "$cur"))
		return ;;
	--after|--after-any)
		COMPREPLY=($(compgen -W "$(_vigil_jobs)" -- "$cur"))
		return ;;
	--retry-command|--before-retry|--on-failure)
		COMPREPLY=($(compgen -c -- "$cur"))
		return ;;
	--notify)
		COMPREPLY=($(compgen -W "stdout json webhook: email:" -- "$cur"))
		return ;;
	--pid)
		COMPREPLY=($(compgen -W "$(ps -e -o pid= 2>/dev/null)" -- "$cur"))
		return ;;
	esac
	case $cmd in
	status)
		COMPREPLY=($(compgen -W "--json --state-dir $(_vigil_jobs)" -- "$cur")) ;;
	logs)
		COMPREPLY=($(compgen -W "-f --follow $(_vigil_jobs)" -- "$cur")) ;;
	stop)
		COMPREPLY=($(compgen -W "--force --grace $(_vigil_jobs)" -- "$cur")) ;;
	check)
		COMPREPLY=($(compgen -f -X '!*.ini' -- "$cur") $(compgen -d -- "$cur")) ;;
	agent)
		COMPREPLY=($(compgen -W "--config --conf-dir --state-dir --plugin-dir --verbose" -- "$cur")) ;;
	reload)
		COMPREPLY=($(compgen -W "--state-dir" -- "$cur")) ;;
	history)
		COMPREPLY=($(compgen -W "--json --last $(_vigil_jobs)" -- "$cur")) ;;
	forget)
		COMPREPLY=($(compgen -W "$(_vigil_jobs)" -- "$cur")) ;;
	prune)
		COMPREPLY=($(compgen -W "--older-than" -- "$cur")) ;;
	watch)
		COMPREPLY=($(compgen -W "--pid --pid-file --match --json $detectors $policy $(_vigil_jobs)" -- "$cur")) ;;
	run)
		COMPREPLY=($(compgen -W "--pid-file $detectors $policy $retry --" -- "$cur")) ;;
	esac
}
complete -F _vigil vigil
