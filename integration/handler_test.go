package integration

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer/internal/testkit"
)

// handler serves WebSocket upgrades and extended CONNECTs with the echo
// handler, and plain HTTP requests with httpMux.
func handler() http.Handler {
	ws, plain := testkit.EchoHandler(), httpMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer tells the Host (or :authority) the server saw.
		w.Header().Set("X-Host", r.Host)
		// An extended CONNECT with X-Connect-Status: N is answered with
		// N, as a server that advertised RFC 8441 and then fails it.
		if n, err := strconv.Atoi(r.Header.Get("X-Connect-Status")); err == nil && r.Method == http.MethodConnect {
			http.Error(w, "extended CONNECT refused by the test", n)
			return
		}
		if r.URL.Path == "/server-close" {
			serverClose(w, r)
			return
		}
		if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
			ws.ServeHTTP(w, r)
			return
		}
		plain.ServeHTTP(w, r)
	})
}

// serverCloses holds, by the request's X-Token, what the server's Close
// returned on /server-close: nil once the client answered its close frame.
var serverCloses sync.Map

// serverClose accepts a WebSocket and closes it from the server's side at
// once (RFC 6455 §5.5.1), recording whether the client's close frame came
// back.
func serverClose(w http.ResponseWriter, r *http.Request) {
	c, err := testkit.AcceptWebSocket(w, r, nil)
	if err != nil {
		return
	}
	serverCloses.Store(r.Header.Get("X-Token"), c.Close(websocket.StatusNormalClosure, "bye"))
}

// httpMux is what the Transport tests talk to.
func httpMux() *http.ServeMux {
	mux := http.NewServeMux()
	// /proto answers with the HTTP version the server saw, and with an
	// Alt-Svc header when asked (?altsvc=h3=":443").
	mux.HandleFunc("/proto", func(w http.ResponseWriter, r *http.Request) {
		if a := r.URL.Query().Get("altsvc"); a != "" {
			w.Header().Set("Alt-Svc", a)
		}
		fmt.Fprintf(w, "%d", r.ProtoMajor)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/proto", http.StatusFound)
	})
	// /stall?ms=N waits N ms (or until the request ends) before its
	// response headers.
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
	})
	// /echo-body returns the request body.
	mux.HandleFunc("/echo-body", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		io.WriteString(gz, "compressed hello")
		gz.Close()
	})
	// /slow?n=N sends N chunks, 50 ms apart, until a write fails. It does
	// not watch r.Context(): net/http's HTTP/1.1 server may cancel that
	// early, and the response must not end on its own while a test
	// cancels it from the client side.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			if _, err := fmt.Fprintf(w, "chunk %d\n", i); err != nil {
				return
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return mux
}
