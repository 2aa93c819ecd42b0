//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package h1

import (
	"net"
	"syscall"
)

// peekable: peerOpen can see a connection the server closed.
const peekable = true

// peerOpen peeks at an idle connection without blocking: a server that
// closed it (its idle timeout, a restart) has left an end of file or a
// reset there, which a request written to it would only meet after the
// write.
func peerOpen(nc net.Conn) bool {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS: the socket beneath
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is an open, idle connection; an end of
		// file, an error, or bytes nobody asked for are not.
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}
