// Go net/http, default ServeMux (stdlib only): one handler per protected path. Every handler
// invocation appends "<route> <x-fw-seq>\n" to $LF_FW_LOG. Go 1.19 (Debian bookworm) has no
// method patterns, so the handler itself answers 405 to anything but POST.
package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
)

var mu sync.Mutex

func handler(route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		f, err := os.OpenFile(os.Getenv("LF_FW_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			seq := r.Header.Get("x-fw-seq")
			if seq == "" {
				seq = "-"
			}
			fmt.Fprintf(f, "%s %s\n", route, seq)
			f.Close()
		}
		mu.Unlock()
		fmt.Fprintf(w, "LF-HANDLER %s\n", route)
	}
}

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/linksfield/sms", handler("md5"))
	mux.HandleFunc("/cube/notify", handler("cube"))
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
