# Shared by the scripts that run the example server; source it.

# wait_for_server PID DIR: waits (up to 2 minutes) for the example server
# with process PID to print `listening on http://HOST:PORT` as the first line
# of DIR/server.out, then prints its URL. Exits with the server's stderr
# (DIR/server.err) if it dies first, or with a message if it never listens.
wait_for_server() {
    local pid=$1 dir=$2 line
    for _ in $(seq 1 240); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the server exited before listening:" >&2
            cat "$dir/server.err" >&2
            exit 1
        fi
        line=$(head -n 1 "$dir/server.out")
        if [[ "$line" == "listening on http://"* ]]; then
            echo "${line#listening on }"
            return
        fi
        sleep 0.5
    done
    echo "the server did not report its address in time" >&2
    exit 1
}
