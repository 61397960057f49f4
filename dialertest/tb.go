package dialertest

import "fmt"

// TB is what the constructors need of a test: *testing.T, *testing.B and
// *testing.F satisfy it. The kit asks for no more than this, and does not
// import package testing, so that a program (such as "eyeballs demo") can
// use it too, with its own TB or with nil.
type TB interface {
	// Helper marks the calling function as a test helper.
	Helper()
	// Cleanup registers a function to run when the test ends.
	Cleanup(func())
	// Fatalf reports a failure and ends the test; it must not return.
	Fatalf(format string, args ...any)
}

// fail reports err through tb, or panics when tb is nil.
func fail(tb TB, err error) {
	if tb != nil {
		tb.Helper()
		tb.Fatalf("%v", err)
	}
	panic(err)
}

// cleanup makes tb run f at the end of the test; with a nil tb the caller
// owns the value and closes it.
func cleanup(tb TB, f func()) {
	if tb != nil {
		tb.Cleanup(f)
	}
}

// errorf returns an error with the package's prefix.
func errorf(format string, args ...any) error {
	return fmt.Errorf("dialertest: "+format, args...)
}
