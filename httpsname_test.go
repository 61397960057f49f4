package dialer

import (
	"context"
	"testing"

	"github.com/eyeballs/dialer/internal/hev3"
)

// A race asks for the HTTPS records of an origin on a port other than
// 443 under the port-prefixed name (RFC 9460 §9.1), and for its addresses
// under the host name.
func TestHTTPSQueryName(t *testing.T) {
	for _, c := range []struct {
		port uint16
		want string
	}{
		{443, "x.test"},
		{8443, "_8443._https.x.test"},
		{1, "_1._https.x.test"},
	} {
		var asked []string
		lookup := func(_ context.Context, name string, t hev3.RecordType) hev3.Answer {
			asked = append(asked, t.String()+" "+name)
			return hev3.Answer{}
		}
		d := &Dialer{net: raceNet{lookup: lookup}}
		n, err := d.network(config{}, raceSpec{host: "x.test", port: c.port}, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.lookup(t.Context(), "x.test", hev3.HTTPS)
		n.lookup(t.Context(), "x.test", hev3.A)
		n.lookup(t.Context(), "x.test", hev3.AAAA)
		want := []string{"HTTPS " + c.want, "A x.test", "AAAA x.test"}
		if len(asked) != 3 || asked[0] != want[0] || asked[1] != want[1] || asked[2] != want[2] {
			t.Errorf("port %d: asked %q, want %q", c.port, asked, want)
		}
	}
}
