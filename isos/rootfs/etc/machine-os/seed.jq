# NoCloud seed -> shell commands run by apply_seed (lib.sh). One jq run for the whole seed (jq costs ~0.3 s per
# start under TCG). Inputs (--rawfile): $md meta-data, $ud user-data, $nc network-config (empty if absent).
#   meta-data: JSON, or simple `key: value` YAML lines. user-data: `#cloud-config` + JSON. network-config: JSON
#   netplan version 2 (`network:` wrapper optional), `ethernets` only.
# user-data keys: hostname/fqdn, disable_root, ssh_authorized_keys, ssh_keys.ed25519_private/_public,
#   users[] (name, shell, groups, ssh_authorized_keys), write_files[] (path, content, encoding, permissions, owner,
#   append), runcmd (strings or argv lists), machine_shares[] (tag, path, ro: host folders mounted at every boot; cifs.unc/user/password: an SMB share).
#   Other keys are ignored.
def arr: if . == null then [] elif type == "array" then . else [.] end;
def groups: if type == "array" then join(",") elif type == "string" then gsub(" "; "") else "" end;
def str: if . == null then "" else tostring end;
def yamlish: split("\n") | map(capture("^(?<k>[A-Za-z0-9_-]+):[ \t]*(?<v>.*?)[ \t]*$")? // empty
  | {(.k): (.v | sub("^[\"'](?<x>.*)[\"']$"; "\(.x)"))}) | add // {};
def doc($raw; $what):
  ($raw | sub("^#cloud-config[^\n]*\n"; "")) as $body |
  if ($body | test("^\\s*$")) then {}
  else ($body | try fromjson catch null) as $j |
    if ($j | type) == "object" then $j else {"__bad": $what} end
  end;

($md | try fromjson catch ($md | yamlish)) as $meta |
doc($ud; "user-data") as $u |
doc($nc; "network-config") as $n |

(@sh "MD_INSTANCE_ID=\($meta["instance-id"] // $meta.instance_id | str)"),
(@sh "MD_HOSTNAME=\($meta["local-hostname"] // $meta.hostname | str)"),
(if $u.__bad then @sh "warn \("user-data is not #cloud-config + JSON; ignored (see isos/README.md)")" else empty end),
(if $n.__bad then @sh "warn \("network-config is not JSON; ignored (see isos/README.md)")" else empty end),
(@sh "UD_HOSTNAME=\($u.hostname // $u.fqdn | str)"),
(@sh "UD_ED_PRIV=\($u.ssh_keys.ed25519_private | str)"),
(@sh "UD_ED_PUB=\($u.ssh_keys.ed25519_public | str)"),
(if $u.disable_root == true then "DISABLE_ROOT=true" else "DISABLE_ROOT=false" end),
"apply_user_data() {",
"  :",
($u.users | arr | .[] | select(type == "object" and (.name // "") != "") | . as $x |
  (@sh "  add_user \($x.name) \($x.shell // "/bin/bash") \($x.groups | groups)"),
  ($x.ssh_authorized_keys | arr | .[] | @sh "  add_key \($x.name) \(.)")),
($u.ssh_authorized_keys | arr | .[] | @sh "  add_key root \(.)"),
($u.write_files | arr | .[] | select(type == "object" and (.path // "") != "") |
  @sh "  write_file \(.path) \(.encoding | str) \(.permissions // "0644" | str) \(.owner | str) \(.append // false | str) \(.content | str)"),
($u.runcmd | arr | .[] |
  if type == "array" then "  echo " + (map(tostring | @sh) | join(" ") | @sh) + " >>$RUN/runcmd.sh"
  else "  printf '%s\\n' " + (tostring | @sh) + " >>$RUN/runcmd.sh" end),
"}",
"apply_shares() {",
"  :",
($u.machine_shares | arr | .[] | select(type == "object" and (.tag // "") != "" and (.path // "") != "") |
  @sh "  mount_share \(.tag | str) \(.path | str) \(.ro // false | str) \(.cifs.unc | str) \(.cifs.user | str) \(.cifs.password | str)"),
"}",
"apply_network_config() {",
"  :",
(($n.network // $n) | (.ethernets // {}) | to_entries[] | .key as $id | .value as $v |
  (@sh "  net_if \($id) \($v.match.macaddress | str) \($v.match.name | str) \($v["set-name"] | str) \($v.dhcp4 // false | str) \($v.mtu | str)"),
  ($v.addresses | arr | .[] | @sh "  net_addr \($id) \(.)"),
  (if $v.gateway4 then @sh "  net_route \($id) default \($v.gateway4)" else empty end),
  ($v.routes | arr | .[] | @sh "  net_route \($id) \(.to // "default") \(.via) \(.metric | str)"),
  ($v.nameservers.addresses | arr | .[] | @sh "  net_dns \(.)"),
  ($v.nameservers.search | arr | if length > 0 then @sh "  net_search \(.)" else empty end)),
"}"
