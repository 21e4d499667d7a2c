# machine-os boot functions (sourced by rc.sysinit; POSIX sh / dash)
DATA_LABEL=machine-os-data
SEED=$RUN/seed

# One blkid probe of all block devices per boot (each `blkid -L` would probe them all again).
BLKID=$RUN/blkid.txt
blkid_scan() { blkid -c /dev/null >$BLKID 2>/dev/null; }
by_label() { # by_label LABEL... -> first device carrying one of the labels
	for l in "$@"; do
		d="$(sed -n "s|^\(/dev/[^:]*\):.* LABEL=\"$l\".*|\1|p" $BLKID | head -n1)"
		[ -n "$d" ] && {
			echo "$d"
			return 0
		}
	done
	return 1
}

# ---------------------------------------------------------------------------------------------------------------
# Data disk. Found by label; else a BLANK disk is formatted once. A disk is blank only if all of these hold:
# whole disk (no partitions), writable, not removable, not a CD/loop/ram/md/dm device, not the boot medium or the
# seed, >= 128 MiB, no signature blkid can see (filesystem, partition table, RAID, LVM, swap...), and its first
# and last MiB read as zeros. Anything else is never touched.
# ---------------------------------------------------------------------------------------------------------------
base_disk() {
	# /dev/vda1 -> vda, /dev/nvme0n1p1 -> nvme0n1, /dev/sr0 -> sr0
	d="${1#/dev/}"
	if [ -e "/sys/class/block/$d/partition" ]; then
		basename "$(readlink -f "/sys/class/block/$d/..")"
	else
		echo "$d"
	fi
}

is_blank_disk() {
	name="$1"
	dev="/dev/$name"
	sys="/sys/block/$name"
	case "$name" in loop* | ram* | sr* | zram* | fd* | md* | dm-* | nbd*) return 1 ;; esac
	[ -b "$dev" ] || return 1
	[ "$(cat $sys/ro 2>/dev/null)" = 0 ] || return 1
	[ "$(cat $sys/removable 2>/dev/null)" = 0 ] || return 1
	for p in $sys/"$name"*; do [ -e "$p/partition" ] && return 1; done
	[ "$name" = "$ROOT_BASE" ] && return 1
	[ "$name" = "$SEED_BASE" ] && return 1
	grep -q "^$dev[ p0-9]" /proc/mounts && return 1
	sectors=$(cat $sys/size)
	mib=$((sectors / 2048))
	[ "$mib" -ge 128 ] || return 1
	blkid -p "$dev" >/dev/null 2>&1
	[ $? -eq 2 ] || return 1 # 2 = no signature found; 0 = something found; other = error
	cmp -s -n 1048576 "$dev" /dev/zero || return 1
	dd if="$dev" bs=1M skip=$((mib - 1)) count=1 2>/dev/null | cmp -s -n 1048576 - /dev/zero || return 1
	return 0
}

mount_data_disk() {
	spec="$1"
	mnt="$2"
	[ "$spec" = none ] && return 1
	ROOT_BASE="$(base_disk "$(cat $RUN/root-device 2>/dev/null)")"
	SEED_BASE=""
	blkid_scan
	seed_dev="$(by_label cidata CIDATA)"
	[ -n "$seed_dev" ] && SEED_BASE="$(base_disk "$seed_dev")"
	dev="$(by_label $DATA_LABEL)"
	if [ -z "$dev" ]; then
		cand=""
		if [ "$spec" != auto ]; then
			is_blank_disk "${spec#/dev/}" && cand="$spec"
		else
			for s in /sys/block/*; do
				n="${s##*/}"
				if is_blank_disk "$n"; then
					cand="/dev/$n"
					break
				fi
			done
		fi
		[ -n "$cand" ] || return 1
		say "machine-os: formatting blank data disk $cand"
		mkfs.ext4 -q -L $DATA_LABEL -m 0 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$cand" </dev/null ||
			{
				warn "mkfs.ext4 on $cand failed"
				return 1
			}
		dev="$cand"
	fi
	mkdir -p "$mnt"
	mount -t ext4 -o noatime "$dev" "$mnt" || {
		warn "cannot mount data disk $dev"
		return 1
	}
	echo "$dev" >$RUN/data-device
	return 0
}

# ---------------------------------------------------------------------------------------------------------------
# NoCloud seed: meta-data (JSON, or simple `key: value` YAML), user-data (`#cloud-config` + JSON), network-config
# (JSON, netplan version 2). Parsed with jq.
# ---------------------------------------------------------------------------------------------------------------
MD_INSTANCE_ID=""
MD_HOSTNAME=""
UD_HOSTNAME=""
UD_ED_PRIV=""
UD_ED_PUB=""
DISABLE_ROOT=false

read_seed() {
	mkdir -p $SEED $RUN/seed-mnt
	for f in meta-data user-data network-config; do : >"$SEED/$f"; done
	[ -s $BLKID ] || blkid_scan
	dev="$(by_label cidata CIDATA)"
	if [ -z "$dev" ]; then
		warn "no NoCloud seed (volume labelled cidata)"
	elif ! mount -o ro "$dev" $RUN/seed-mnt; then
		warn "cannot mount seed $dev"
	else
		for f in meta-data user-data network-config; do
			[ -f "$RUN/seed-mnt/$f" ] && cp "$RUN/seed-mnt/$f" "$SEED/$f"
		done
		umount $RUN/seed-mnt
		echo "$dev" >$RUN/seed-device
	fi
	# one jq run turns the whole seed into shell (values quoted with @sh): variables + apply_* functions
	if ! jq -n -r --rawfile md $SEED/meta-data --rawfile ud $SEED/user-data --rawfile nc $SEED/network-config \
		-f /etc/machine-os/seed.jq >$SEED/seed.sh; then
		warn "cannot interpret the seed"
		: >$SEED/seed.sh
	fi
	. $SEED/seed.sh
	return 0
}

# --- commands emitted by seed.jq ---------------------------------------------------------------------------
add_key() { # add_key USER KEY
	u="$1"
	k="$2"
	[ -n "$k" ] || return 0
	if [ "$u" = root ]; then
		[ "$DISABLE_ROOT" = true ] && return 0
		home=/root
	else
		home="$(awk -F: -v u="$u" '$1 == u { print $6 }' /etc/passwd)"
		[ -n "$home" ] || return 0
	fi
	mkdir -p "$home/.ssh"
	touch "$home/.ssh/authorized_keys"
	grep -qxF "$k" "$home/.ssh/authorized_keys" || printf '%s\n' "$k" >>"$home/.ssh/authorized_keys"
	chmod 700 "$home/.ssh"
	chmod 600 "$home/.ssh/authorized_keys"
	[ "$u" = root ] || chown -R "$u:" "$home/.ssh"
}

add_user() { # add_user NAME SHELL GROUPS(comma separated)
	name="$1"
	shell="${2:-/bin/bash}"
	groups="$3"
	[ "$name" = root ] && return 0
	if ! grep -q "^$name:" /etc/passwd; then
		uid=1000
		while cut -d: -f3 /etc/passwd | grep -qx $uid || cut -d: -f3 /etc/group | grep -qx $uid; do uid=$((uid + 1)); done
		echo "$name:x:$uid:$uid::/home/$name:$shell" >>/etc/passwd
		echo "$name:x:$uid:" >>/etc/group
		echo "$name:*:19000:0:99999:7:::" >>/etc/shadow
		mkdir -p "/home/$name"
		chown "$uid:$uid" "/home/$name"
	fi
	# members of `docker` may use the engine without root (there is no sudo in machine-os)
	for g in $(echo "docker,$groups" | tr ',' ' '); do
		grep -q "^$g:" /etc/group || continue
		line="$(grep "^$g:" /etc/group)"
		case ",${line##*:}," in *",$name,"*) continue ;; esac
		if [ -z "${line##*:}" ]; then new="$line$name"; else new="$line,$name"; fi
		sed -i "s|^$g:.*|$new|" /etc/group
	done
}

write_file() { # write_file PATH ENCODING PERMISSIONS OWNER APPEND CONTENT   (per instance, like cloud-init)
	[ -n "$NEW_INSTANCE" ] || return 0
	path="$1"
	case "$path" in /*) ;; *)
		warn "write_files: path $path is not absolute; skipped"
		return 0
		;;
	esac
	mkdir -p "$(dirname "$path")"
	tmp="$path.machine-os-tmp"
	case "$2" in
	b64 | base64) printf '%s' "$6" | base64 -d >"$tmp" ;;
	gz+b64 | gzip+base64 | gz+base64 | gzip+b64) printf '%s' "$6" | base64 -d | gzip -dc >"$tmp" ;;
	gz | gzip) printf '%s' "$6" | gzip -dc >"$tmp" ;;
	*) printf '%s' "$6" >"$tmp" ;;
	esac || {
		warn "write_files: cannot decode $path"
		rm -f "$tmp"
		return 0
	}
	chmod "${3:-0644}" "$tmp"
	[ -n "$4" ] && chown "$4" "$tmp" 2>/dev/null
	if [ "$5" = true ] && [ -f "$path" ]; then
		cat "$tmp" >>"$path"
		rm -f "$tmp"
	else
		mv -f "$tmp" "$path"
	fi
	echo "write_files: $path"
}

# Shared folders (seed key machine_shares): the host exposes each under its tag with virtiofs, virtio-9p or a
# VirtualBox shared folder; the guest tries them in that order. A share with a UNC (Hyper-V) is an SMB share on the
# host, mounted with the kernel's cifs (no mount.cifs: the account's password goes to the kernel as an option; the
# kernel keeps it out of /proc/mounts). One console line per share says what happened.
mount_share() { # mount_share TAG PATH RO(true|false) [UNC USER PASSWORD]
	tag="$1"
	path="$2"
	ro=""
	[ "$3" = true ] && ro=ro
	case "$path" in /*) ;; *)
		say "machine-os: share-failed: $tag $path: not an absolute path"
		return 0
		;;
	esac
	if ! mkdir -p "$path" 2>$RUN/share.err; then
		say "machine-os: share-failed: $tag $path: $(head -c 200 $RUN/share.err)"
		return 0
	fi
	if [ -n "$4" ]; then
		modprobe -q cifs 2>/dev/null
		if mount -t cifs -o "username=$5,password=$6,vers=3.0,uid=0,gid=0,file_mode=0777,dir_mode=0777,noperm,nobrl,mfsymlinks,actimeo=1${ro:+,ro}" "$4" "$path" 2>$RUN/share.err; then
			say "machine-os: share-mounted: $tag $path cifs"
		else
			say "machine-os: share-failed: $tag $path: cifs mount of $4 failed ($(tr '\n' ' ' <$RUN/share.err | head -c 200))"
		fi
		return 0
	fi
	modprobe -q virtiofs 2>/dev/null
	if mount -t virtiofs ${ro:+-o ro} "$tag" "$path" 2>$RUN/share.err; then
		say "machine-os: share-mounted: $tag $path virtiofs"
		return 0
	fi
	modprobe -q -a 9pnet_virtio 9p 2>/dev/null
	if mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,cache=mmap${ro:+,ro}" "$tag" "$path" 2>$RUN/share.err; then
		say "machine-os: share-mounted: $tag $path 9p"
		return 0
	fi
	modprobe -q vboxsf 2>/dev/null
	if mount -t vboxsf ${ro:+-o ro} "$tag" "$path" 2>$RUN/share.err; then
		say "machine-os: share-mounted: $tag $path vboxsf"
		return 0
	fi
	say "machine-os: share-failed: $tag $path: no virtiofs, 9p or vboxsf device with this tag mounted ($(tr '\n' ' ' <$RUN/share.err | head -c 200))"
	return 0
}

apply_seed() {
	: >$RUN/runcmd.sh
	command -v apply_user_data >/dev/null && apply_user_data
}

# ---------------------------------------------------------------------------------------------------------------
# Network: lo; network-config (v2 ethernets: match macaddress/name, set-name, dhcp4, addresses, gateway4, routes,
# nameservers, mtu) for the NICs it names; DHCP (busybox udhcpc) on the first NIC unless network-config covers it.
# ---------------------------------------------------------------------------------------------------------------
CONFIGURED_IFS=" "
first_nic() {
	best=""
	bidx=999999
	for n in /sys/class/net/*; do
		i="${n##*/}"
		[ "$i" = lo ] && continue
		[ -e "$n/device" ] || continue # physical (or virtual hardware) NICs only
		idx=$(cat "$n/ifindex")
		if [ "$idx" -lt "$bidx" ]; then
			bidx=$idx
			best=$i
		fi
	done
	echo "$best"
}

net_resolve() { # net_resolve ID MAC NAME -> prints the interface name
	if [ -n "$2" ]; then
		want="$(echo "$2" | tr 'A-F' 'a-f')"
		for n in /sys/class/net/*; do
			[ "$(cat "$n/address" 2>/dev/null)" = "$want" ] && {
				echo "${n##*/}"
				return 0
			}
		done
		return 1
	fi
	pat="${3:-$1}"
	for n in /sys/class/net/*; do
		i="${n##*/}"
		# shellcheck disable=SC2254
		case "$i" in $pat)
			echo "$i"
			return 0
			;;
		esac
	done
	return 1
}

IFMAP=$RUN/ifmap
net_if() { # net_if ID MAC NAME SET_NAME DHCP4 MTU
	i=""
	tries=0
	# NIC drivers were just loaded: give a late interface up to 2 s
	while ! i="$(net_resolve "$1" "$2" "$3")"; do
		tries=$((tries + 1))
		[ $tries -gt 40 ] && {
			warn "network-config: no interface for $1"
			return 0
		}
		sleep 0.05
	done
	if [ -n "$4" ] && [ "$4" != "$i" ]; then
		ip link set "$i" down
		ip link set "$i" name "$4" && i="$4"
	fi
	echo "$1 $i" >>$IFMAP
	CONFIGURED_IFS="$CONFIGURED_IFS$i "
	[ -n "$6" ] && ip link set "$i" mtu "$6"
	ip link set "$i" up
	[ "$5" = true ] && start_dhcp "$i"
	return 0
}
ifname_of() { awk -v id="$1" '$1 == id { print $2; exit }' $IFMAP 2>/dev/null; }
net_addr() {
	i="$(ifname_of "$1")"
	[ -n "$i" ] || return 0
	ip addr add "$2" dev "$i" && touch $RUN/net-up.$i
}
net_route() { # net_route ID TO VIA [METRIC]
	i="$(ifname_of "$1")"
	[ -n "$i" ] || return 0
	to="$2"
	[ "$to" = "0.0.0.0/0" ] && to=default
	ip route replace "$to" via "$3" dev "$i" ${4:+metric $4}
}
net_dns() {
	grep -qx "nameserver $1" /etc/resolv.conf 2>/dev/null || echo "nameserver $1" >>/etc/resolv.conf
	touch $RUN/static-dns
}
net_search() { echo "search $*" >>/etc/resolv.conf; }

start_dhcp() {
	setsid udhcpc -f -i "$1" -s /etc/machine-os/udhcpc.script -t 0 -T 2 -A 3 -S -x "hostname:$(hostname)" \
		-p $RUN/udhcpc.$1.pid </dev/null >>$RUN/udhcpc.log 2>&1 &
}

setup_network() {
	ip link set lo up
	: >$IFMAP
	: >/etc/resolv.conf
	command -v apply_network_config >/dev/null && apply_network_config
	FIRST="$(first_nic)"
	tries=0
	while [ -z "$FIRST" ] && [ $tries -lt 40 ]; do
		sleep 0.05
		tries=$((tries + 1))
		FIRST="$(first_nic)"
	done
	echo "$FIRST" >$RUN/first-nic
	if [ -n "$FIRST" ]; then
		case "$CONFIGURED_IFS" in *" $FIRST "*) ;; *)
			ip link set "$FIRST" up
			start_dhcp "$FIRST"
			;;
		esac
	else
		warn "no network interface"
	fi
}
