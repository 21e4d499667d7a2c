# cloud-config (JSON form) -> shell commands run by apply_seed (lib.sh). Supported keys: disable_root,
# ssh_authorized_keys, users[] (name, shell, groups, ssh_authorized_keys), write_files[] (path, content,
# encoding, permissions, owner, append), runcmd. hostname/fqdn and ssh_keys are read directly by lib.sh.
def arr: if . == null then [] elif type == "array" then . else [.] end;
def groups: if type == "array" then join(",") elif type == "string" then gsub(" "; "") else "" end;
(if .disable_root == true then "DISABLE_ROOT=true" else "DISABLE_ROOT=false" end),
(.users | arr | .[] | select(type == "object" and (.name // "") != "") | . as $u |
  (@sh "add_user \($u.name) \($u.shell // "/bin/bash") \($u.groups // "" | groups)"),
  ($u.ssh_authorized_keys | arr | .[] | @sh "add_key \($u.name) \(.)")),
(.ssh_authorized_keys | arr | .[] | @sh "add_key root \(.)"),
(.write_files | arr | .[] | select(type == "object" and (.path // "") != "") |
  @sh "write_file \(.path) \(.encoding // "") \(.permissions // "0644" | tostring) \(.owner // "") \(.append // false | tostring) \(.content // "")"),
(.runcmd | arr | .[] |
  if type == "array" then "echo " + (map(tostring | @sh) | join(" ") | @sh) + " >>$RUN/runcmd.sh"
  else "printf '%s\\n' " + (tostring | @sh) + " >>$RUN/runcmd.sh" end)
