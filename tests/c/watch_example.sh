# Checks a "watch the mailbox" example program (examples/c/watch_mailbox.c,
# examples/csharp/WatchMailbox.cs) end to end on the harness; sourced by scripts/test-c and
# scripts/test-csharp, which define seed_fresh, $work and the harness's environment.
#   check_watch_example LABEL COMMAND...   (COMMAND gets MAILBOX.json OUTDIR appended)
# The mailbox holds the three messages of the C tests. Storing the second ticket fails at first
# (a directory stands where its file goes): the program must acknowledge only the first, get the
# other two again, and store them once the way is free. Then it waits for new mail (IDLE): a
# fourth message arrives and becomes ticket 4. A STOP file makes it cancel its wait and exit 0.
await_file_text() { # file text: waits up to two minutes for `text` in `file`
  local i
  for i in $(seq 1200); do
    if grep -qF -- "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for \"$2\" in $1" >&2
  return 1
}

check_watch_example() {
  local label="$1"; shift
  local dir="$work/watch-$label" user pid i
  mkdir -p "$dir/out/ticket-2.json"
  user="$(seed_fresh "watch-$label")"
  cat > "$dir/mailbox.json" <<JSON
{"name": "watch-$label", "email": "$user",
 "imap": {"server": "127.0.0.1", "port": $PMA_IMAPS_PORT, "encryption": "ssl", "ca_file": "$PMA_CA_FILE"}}
JSON
  (cd "$dir" && PMA_MAILBOX_PASSWORD="$PMA_PASSWORD" "$@" mailbox.json out > watch.out 2> watch.err) &
  pid=$!
  fail_watch() { echo "watch example $label: $1" >&2; cat "$dir/watch.out" "$dir/watch.err" >&2; kill "$pid" 2>/dev/null; exit 1; }
  await_file_text "$dir/watch.out" "stored 1 of 3 ticket(s); acknowledged those, the rest comes again" || fail_watch "no partial acknowledgement"
  rmdir "$dir/out/ticket-2.json"
  await_file_text "$dir/watch.out" "stored 2 ticket(s), 3 in all" || fail_watch "the rest did not come again"
  printf 'From: Late Customer <late@example.com>\nTo: helpdesk@contoso.test\nSubject: Arrived while waiting\nMessage-ID: <watch-%s-4@example.com>\n\nHello while you wait.\n' "$label" > "$dir/4.eml"
  curl -sS --cacert "$PMA_CA_FILE" --user "$user:$PMA_PASSWORD" -T "$dir/4.eml" "imaps://127.0.0.1:$PMA_IMAPS_PORT/INBOX"
  # Stored and acknowledged (a stop between the two would, rightly, leave it unacknowledged).
  await_file_text "$dir/watch.out" "stored 1 ticket(s), 4 in all" || fail_watch "the mail that arrived during the wait was not stored"
  touch "$dir/out/STOP"
  wait "$pid" || fail_watch "exit code $? after STOP"
  grep -qF "stopped: 4 ticket(s) stored" "$dir/watch.out" || fail_watch "no clean stop"
  for i in 1 2 3; do
    grep -qF "c-ffi-$i@example.com" "$dir/out/ticket-$i.json" || fail_watch "ticket-$i.json is not message $i (a ticket came twice?)"
  done
  grep -qF '"subject":"Arrived while waiting"' "$dir/out/ticket-4.json" || fail_watch "ticket-4.json is not the new mail"
  [ ! -e "$dir/out/ticket-5.json" ] || fail_watch "a fifth ticket: something was delivered twice"
  echo "watch example $label: partial ack, wait for mail and cancel on stop: ok"
}
