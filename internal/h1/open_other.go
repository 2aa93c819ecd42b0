//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package h1

import "net"

// peekable: here an idle connection cannot be checked before it is
// reused, and a request written to one the server closed would fail
// after its write, beyond a safe retry; so every request goes to the
// Fallback transport, whose read loop sees a close as it happens.
const peekable = false

func peerOpen(net.Conn) bool { return true }
