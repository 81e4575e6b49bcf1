# cdn.sh -- sourced by scripts/testbed/testbed: configs and daemons (filled in below).
cdn_up() { say "daemons not wired yet"; return 1; }
cdn_start_host() { return 1; }
