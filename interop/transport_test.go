package interop

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/eyeballs/dialer"
)

// checkTransport checks a new Transport against origin
// ("https://host:port"): GETs of the world's documents (checkGETs) and,
// with post set, POSTs to the echo backend's /post behind the server
// (checkPOST), all over HTTP/major. It returns the protocol for the
// matrix.
func checkTransport(t testing.TB, w *world, r *row, origin string, major int, post bool, opts ...dialer.Option) string {
	t.Helper()
	client := &http.Client{Transport: w.transport(opts...)}
	checkGETs(t, w, r, client, origin, major)
	if post {
		checkPOST(t, client, origin+"/post", major, true)
	}
	return proto(major)
}

// checkGETs fetches each of the world's documents from origin through
// client, checks status 200, the body, and that HTTP/major carried every
// response, and compares each answer with curl's (compareCurl); a HEAD of
// each must give the length without a body.
func checkGETs(t testing.TB, w *world, r *row, client *http.Client, origin string, major int) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(w.docs)) {
		u := origin + p
		checkHEAD(t, client, u, len(w.docs[p]), major)
		resp, body := fetch(t, client, u)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, w.docs[p]) {
			t.Errorf("GET %s: %s, %d bytes; want 200 and the file's %d bytes", u, resp.Status, len(body), len(w.docs[p]))
		}
		if resp.ProtoMajor != major {
			t.Errorf("GET %s over HTTP/%d, want HTTP/%d", u, resp.ProtoMajor, major)
		}
		compareCurl(t, w, r, u, resp, body)
	}
}

// checkPOST POSTs 1 MiB with a Content-Length to u, the echo backend's
// /post behind a server, and with unknown set also 256 KiB of unknown
// length (streamed without one), and checks that each comes back whole
// over HTTP/major, with an X-Test header passed on both ways.
func checkPOST(t testing.TB, client *http.Client, u string, major int, unknown bool) {
	t.Helper()
	for _, known := range []bool{true, false} {
		if !known && !unknown {
			continue
		}
		size := 1 << 20
		if !known {
			size = 256 << 10
		}
		resp, sent, got := post(t, client, u, size, known)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, sent) || resp.Header.Get("X-Test") != "post-"+itoa(size) {
			t.Errorf("POST %s (%d bytes, length known %v): %s, %d bytes back, X-Test %q", u, size, known,
				resp.Status, len(got), resp.Header.Get("X-Test"))
		}
		if resp.ProtoMajor != major {
			t.Errorf("POST %s over HTTP/%d, want HTTP/%d", u, resp.ProtoMajor, major)
		}
	}
}

// post POSTs size bytes to u, with a Content-Length when known is set and
// streamed without one otherwise, and returns the response, the bytes
// sent and the body that came back.
func post(t testing.TB, client *http.Client, u string, size int, known bool) (resp *http.Response, sent, got []byte) {
	t.Helper()
	sent = bytes.Repeat([]byte("interop POST body "), size/18+1)[:size]
	var rd io.Reader = bytes.NewReader(sent)
	if !known {
		rd = io.MultiReader(rd) // hides the length
	}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "post-"+itoa(size))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST %s (%d bytes): %v", u, size, err)
	}
	defer resp.Body.Close()
	got, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the body: %v", u, err)
	}
	return resp, sent, got
}

// checkHEAD sends a HEAD for u and checks status 200, Content-Length
// size, an empty body and HTTP/major.
func checkHEAD(t testing.TB, client *http.Client, u string, size, major int) {
	t.Helper()
	resp, err := client.Head(u)
	if err != nil {
		t.Fatalf("HEAD %s: %v", u, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(body) != 0 {
		t.Errorf("HEAD %s: body %d bytes, %v; want none", u, len(body), err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(size) || resp.ProtoMajor != major {
		t.Errorf("HEAD %s: %s, Content-Length %d over HTTP/%d; want 200, %d over HTTP/%d",
			u, resp.Status, resp.ContentLength, resp.ProtoMajor, size, major)
	}
}

// fetch GETs u and returns the response and its body.
func fetch(t testing.TB, client *http.Client, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return resp, body
}
