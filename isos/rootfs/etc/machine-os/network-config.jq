# netplan version 2 (JSON form) -> shell commands for setup_network (lib.sh). `ethernets` only.
def arr: if . == null then [] elif type == "array" then . else [.] end;
(.network // .) | (.ethernets // {}) | to_entries[] | .key as $id | .value as $v |
  (@sh "net_if \($id) \($v.match.macaddress // "") \($v.match.name // "") \($v["set-name"] // "") \($v.dhcp4 // false | tostring) \($v.mtu // "" | tostring)"),
  ($v.addresses | arr | .[] | @sh "net_addr \($id) \(.)"),
  (if $v.gateway4 then @sh "net_route \($id) default \($v.gateway4)" else empty end),
  ($v.routes | arr | .[] | @sh "net_route \($id) \(.to // "default") \(.via) \(.metric // "" | tostring)"),
  ($v.nameservers.addresses | arr | .[] | @sh "net_dns \(.)"),
  ($v.nameservers.search | arr | if length > 0 then @sh "net_search \(.)" else empty end)
