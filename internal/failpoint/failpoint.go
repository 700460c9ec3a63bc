// Package failpoint lets tests crash the real binary at a named point:
// with YKT_FAILPOINT=<name> the process kills itself with SIGKILL the first
// time it reaches Hit(name), exactly as `kill -9` would. The names are listed
// in gateway (failpoints.go) and in the README. Without the variable Hit costs
// one string comparison.
package failpoint

import (
	"os"
	"syscall"
)

// Env is the variable that arms a failpoint.
const Env = "YKT_FAILPOINT"

var armed = os.Getenv(Env)

// Hit dies at once if name is the armed failpoint.
func Hit(name string) {
	if armed == "" || armed != name {
		return
	}
	os.Stderr.WriteString("failpoint " + name + ": SIGKILL\n")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}

// Armed returns the armed failpoint name ("" when none).
func Armed() string { return armed }
