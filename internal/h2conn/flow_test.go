package h2conn

import "testing"

// TestInflowAck: data consumed before our SETTINGS are acknowledged is
// not counted twice when the ACK shrinks the stream window.
func TestInflowAck(t *testing.T) {
	f := newInflow(initialWindow, initialWindow)
	if !f.take(10000) {
		t.Fatal("take within the window failed")
	}
	if inc := f.add(8192); inc != 0 {
		t.Fatalf("early WINDOW_UPDATE %d", inc)
	}
	f.resize(1024 - initialWindow)
	f.target = 1024
	if f.take(1) {
		t.Fatal("took data past a negative window")
	}
	if inc := f.add(1808); inc != 10000 {
		t.Fatalf("WINDOW_UPDATE %d, want 10000", inc)
	}
	if f.avail != 1024 || f.win != 1024 {
		t.Fatalf("window %+v, want 1024 available", f)
	}
}

// TestInflowShrink: a connection window below 65535 shrinks to its
// target as the first data is read.
func TestInflowShrink(t *testing.T) {
	f := newInflow(initialWindow, 4096)
	if !f.take(initialWindow) || f.take(1) {
		t.Fatal("window not 65535 at first")
	}
	if inc := f.add(60000); inc != 0 {
		t.Fatalf("WINDOW_UPDATE %d while above target", inc)
	}
	if inc := f.add(5535); inc != 4096 {
		t.Fatalf("WINDOW_UPDATE %d, want 4096", inc)
	}
	if f.win != 4096 || f.avail != 4096 {
		t.Fatalf("window %+v", f)
	}
	// From now on credit comes back in halves of the target.
	f.take(4096)
	if inc := f.add(2047); inc != 0 {
		t.Fatalf("WINDOW_UPDATE %d below half", inc)
	}
	if inc := f.add(1); inc != 2048 {
		t.Fatalf("WINDOW_UPDATE %d, want 2048", inc)
	}
}
