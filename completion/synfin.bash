# bash completion for synfin(8)
_synfin() {
	local cur prev
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	-i | --iface)
		COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
		return ;;
	--cgroup | --netns)
		COMPREPLY=($(compgen -d -- "$cur"))
		return ;;
	--hook)
		COMPREPLY=($(compgen -W "auto tp_btf tracepoint" -- "$cur"))
		return ;;
	-p | --pid | -P | --port | --sport | --dport | -d | --duration | --stuck | --ringbuf-size | \
	--max-conns | --interval | --metrics)
		return ;;
	esac
	COMPREPLY=($(compgen -W "-p --pid -P --port --sport --dport -4 --ipv4 -6 --ipv6 --netns
		--cgroup -d --duration -j --json --life --summary --interval --metrics --stuck -i --iface
		--all-segments --ladder
		--relative --ringbuf-size --max-conns --hook -v --verbose -h --help --usage -V
		--version" -- "$cur"))
}
complete -F _synfin synfin
