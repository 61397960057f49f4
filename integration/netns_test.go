//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/testkit"
)

// The namespace scenario: real (documentation) addresses on a real link,
// where an address nobody answers for is unreachable the way it is on a
// LAN: the kernel's neighbor discovery gives up after about 3 s and connect
// fails with EHOSTUNREACH, where the loopback faults can only refuse or
// blackhole.
//
// TestFaultNamespace (root only, with working `ip netns`) creates two
// network namespaces joined by a veth pair, 192.0.2.1/24 and 2001:db8::1/32
// on the client side, 192.0.2.2/24 and 2001:db8::2/32 on the server side,
// and runs TestFaultNamespaceChild inside the client namespace. The child
// opens its servers' sockets inside the server namespace (setns on a locked
// thread); its DNS server stays on the client namespace's loopback. Nothing
// is configured outside the two namespaces, which are deleted at the end.

const (
	netnsServerEnv = "EYEBALLS_FAULT_NETNS_SERVER"
	nsClient4      = "192.0.2.1"
	nsServer4      = "192.0.2.2"
	nsServer6      = "2001:db8::2"
	nsNobody4      = "192.0.2.99"
	nsNobody6      = "2001:db8::99"
)

func TestFaultNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: skipped with -short")
	}
	if os.Getenv(netnsServerEnv) != "" {
		t.Skip("already inside the namespace")
	}
	if os.Geteuid() != 0 {
		t.Skip("the namespace scenario needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the namespace scenario needs ip(8)")
	}
	id := fmt.Sprintf("eyeballs-%d", os.Getpid())
	client, server := id+"-c", id+"-s"
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := ip("netns", "add", client); err != nil {
		t.Skipf("ip netns does not work here: %v", err)
	}
	t.Cleanup(func() { ip("netns", "del", client) })
	if err := ip("netns", "add", server); err != nil {
		t.Skipf("ip netns does not work here: %v", err)
	}
	t.Cleanup(func() { ip("netns", "del", server) })
	for _, args := range [][]string{
		{"-n", client, "link", "set", "lo", "up"},
		{"-n", server, "link", "set", "lo", "up"},
		{"-n", client, "link", "add", "vc", "type", "veth", "peer", "name", "vs", "netns", server},
		{"-n", client, "addr", "add", nsClient4 + "/24", "dev", "vc"},
		{"-n", client, "addr", "add", "2001:db8::1/32", "dev", "vc", "nodad"},
		{"-n", server, "addr", "add", nsServer4 + "/24", "dev", "vs"},
		{"-n", server, "addr", "add", nsServer6 + "/32", "dev", "vs", "nodad"},
		{"-n", client, "link", "set", "vc", "up"},
		{"-n", server, "link", "set", "vs", "up"},
	} {
		if err := ip(args...); err != nil {
			t.Skipf("cannot build the namespaces: %v", err)
		}
	}
	// The links' addresses are usable once duplicate address detection
	// of their link-local addresses is done.
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range [][2]string{{client, "vc"}, {server, "vs"}} {
		for {
			out, err := exec.Command("ip", "-n", ns[0], "-6", "addr", "show", "dev", ns[1], "tentative").CombinedOutput()
			if err == nil && !bytes.Contains(out, []byte("inet6")) {
				break
			}
			if time.Now().After(deadline) {
				t.Skipf("IPv6 addresses of %s still tentative: %s %v", ns[0], out, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	args := []string{"netns", "exec", client, os.Args[0], "-test.run=^TestFaultNamespaceChild$", "-test.v", "-test.count=1"}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), netnsServerEnv+"="+server)
	out, err := cmd.CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		for _, tag := range []string{"RELIABILITY |", "ERROR |"} {
			if i := strings.Index(line, tag); i >= 0 {
				t.Log(line[i:])
			}
		}
	}
	if err != nil {
		t.Fatalf("the test inside the namespace failed: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("RELIABILITY |")) {
		t.Fatalf("the test inside the namespace ran no case:\n%s", out)
	}
}

// inNetns runs fn on a thread that is in the network namespace name, so
// that the sockets fn opens belong to it.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	target, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", name, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and ends with the goroutine.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// nsFaults are the namespace cases. A and AAAA name the server's
// addresses, or addresses on the link that nobody answers for.
var nsFaults = []struct {
	fault
	a, aaaa string
}{
	{
		fault: fault{name: "netns dual-stack", ws: succeeds(faultSlack, "h2", "IPv6"), tr: succeeds(faultSlack, "h2", "IPv6"), wt: succeeds(faultSlack, "h3", "IPv6")},
		a:     nsServer4, aaaa: nsServer6,
	},
	{
		fault: fault{
			name: "netns IPv6 host unreachable",
			ws:   succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
			tr:   succeeds(attemptDelay+faultSlack, "h2", "IPv4"),
			wt:   succeeds(attemptDelay+faultSlack, "h3", "IPv4"),
		},
		a: nsServer4, aaaa: nsNobody6,
	},
	{
		// Neighbor discovery and ARP give up after about 3 s: TCP
		// attempts fail with EHOSTUNREACH. QUIC's sends fail silently.
		fault: fault{
			name: "netns all hosts unreachable", timeout: 5 * time.Second,
			ws: fails(4*time.Second, contains("no route to host"), stage("connect")),
			tr: fails(4*time.Second, contains("no route to host"), stage("connect")),
			wt: expect{max: 5*time.Second + faultSlack, min: 3 * time.Second, causes: []cause{stage("connect")}},
		},
		a: nsNobody4, aaaa: nsNobody6,
	},
}

// TestFaultNamespaceChild runs the namespace cases; TestFaultNamespace
// starts it inside the client namespace.
func TestFaultNamespaceChild(t *testing.T) {
	server := os.Getenv(netnsServerEnv)
	if server == "" {
		t.Skip("runs inside TestFaultNamespace's namespaces only")
	}
	for _, kind := range []sessionKind{kindWS, kindWT, kindTr} {
		t.Run(string(kind), func(t *testing.T) {
			for _, nf := range nsFaults {
				runCase(t, kind, nf.fault, func(t *testing.T) *world {
					return buildNetnsWorld(t, kind, nf.fault, server, nf.a, nf.aaaa)
				})
			}
		})
	}
}

// buildNetnsWorld starts the kind's servers on one port of the server
// namespace's addresses, and a DNS server answering a and aaaa.
func buildNetnsWorld(t *testing.T, kind sessionKind, f fault, server, a, aaaa string) *world {
	t.Helper()
	checkFDs(t)
	ca, err := testkit.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dns: dnstest.Start(t), ca: ca}
	var (
		ls  []net.Listener
		pcs []net.PacketConn
	)
	// One port on TCP and UDP of both addresses.
	err = inNetns(server, func() error {
		for range 20 {
			l4, err := net.Listen("tcp4", net.JoinHostPort(nsServer4, "0"))
			if err != nil {
				return err
			}
			port := itoa(l4.Addr().(*net.TCPAddr).Port)
			ls, pcs = []net.Listener{l4}, nil
			l6, err := net.Listen("tcp6", net.JoinHostPort(nsServer6, port))
			if err == nil {
				ls = append(ls, l6)
				var u4, u6 net.PacketConn
				if u4, err = net.ListenPacket("udp4", net.JoinHostPort(nsServer4, port)); err == nil {
					pcs = append(pcs, u4)
					if u6, err = net.ListenPacket("udp6", net.JoinHostPort(nsServer6, port)); err == nil {
						pcs = append(pcs, u6)
						e.port = l4.Addr().(*net.TCPAddr).Port
						return nil
					}
				}
			}
			for _, l := range ls {
				l.Close()
			}
			for _, pc := range pcs {
				pc.Close()
			}
		}
		return fmt.Errorf("no port free on %s and %s", nsServer4, nsServer6)
	})
	if err != nil {
		t.Fatal(err)
	}
	l4, l6, u4, u6 := ls[0], ls[1], pcs[0], pcs[1]
	for _, l := range []net.Listener{l4, l6} {
		hs, err := testkit.StartServer(l, &http.Server{Handler: handler(), TLSConfig: e.serverTLS()})
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { hs.Close() })
	}
	// WebTransport gets QUIC servers; WebSocket and the Transport, with
	// no HTTPS record, race TCP only.
	for _, pc := range []net.PacketConn{u4, u6} {
		if kind != kindWT {
			pc.Close()
			continue
		}
		s, err := testkit.StartWebTransport(pc, e.serverTLS())
		if err != nil {
			pc.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	e.dns.A(host, a)
	e.dns.AAAA(host, aaaa)
	return &world{kind: kind, f: f, e: e, port: e.port}
}
