package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SFTP's default request size is 32 KiB, the size every server must take.
// A server that states larger limits (limits@openssh.com, OpenSSH 8.6 and
// later: 255 KiB writes and reads) is sent fewer, larger requests: a 3 MB
// file in 12 writes instead of 90, which costs both ends less CPU per byte
// (measured on loopback OpenSSH: about a quarter less for client and sshd
// together, BenchmarkSendOpenSSH).
const (
	defaultPacket = 32 << 10
	// maxPacket caps what a server's limits can raise the request size to:
	// pkg/sftp refuses any reply longer than 256 KiB, and a read reply
	// carries 13 bytes around its data.
	maxPacket = 256<<10 - 1024
	// inFlight is what one file keeps in flight at most, whatever the
	// request size: pkg/sftp's default of 64 requests of 32 KiB.
	inFlight = 64 * defaultPacket
)

// sftpLimits is a server's answer to limits@openssh.com; 0 is "not stated".
type sftpLimits struct {
	packet, read, write, handles uint64
}

// packetSize is the data size of one read or write request for a server
// that stated l: its read and write limits, within its packet limit (less
// room for the request's own fields), capped at maxPacket; never below the
// default.
func (l sftpLimits) packetSize() int {
	n := uint64(maxPacket)
	for _, v := range []uint64{l.read, l.write} {
		if v > 0 && v < n {
			n = v
		}
	}
	if l.packet > 0 {
		if l.packet <= 1024 {
			return defaultPacket
		}
		n = min(n, l.packet-1024)
	}
	return max(int(n), defaultPacket)
}

// concurrency is how many requests of size p keep inFlight bytes in flight.
func concurrency(p int) int { return max(1, inFlight/p) }

// requestSize sets fc's read and write request size from the server's
// limits where it offers limits@openssh.com (asked on a second session;
// fc has not been used yet) and returns it. Any failure keeps the default:
// a server that refuses a second session is served as before.
func (ch *Channel) requestSize(sc *ssh.Client, fc *sftp.Client) int {
	if ch.defaultPacket {
		return defaultPacket
	}
	if v, ok := fc.HasExtension("limits@openssh.com"); !ok || v != "1" {
		return defaultPacket
	}
	l, ok, err := queryLimits(sc)
	if err != nil || !ok {
		ch.log.Debug("limits@openssh.com not answered; default request size", "err", err)
		return defaultPacket
	}
	p := l.packetSize()
	for _, o := range []sftp.ClientOption{sftp.MaxPacketUnchecked(p), sftp.MaxConcurrentRequestsPerFile(concurrency(p))} {
		if err := o(fc); err != nil {
			return defaultPacket // cannot happen: p >= 32 KiB, concurrency >= 1
		}
	}
	return p
}

// SFTP packet types and the version we speak (draft-ietf-secsh-filexfer-02).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201
	fxVersion        = 3
)

// queryLimits asks the server for its limits on an SFTP session of its own
// (pkg/sftp offers no way to send the request on its session) and closes
// it. ok is false, with no error, when the server does not offer
// limits@openssh.com. The caller bounds it with the connection's deadline.
func queryLimits(sc *ssh.Client) (l sftpLimits, ok bool, err error) {
	s, err := sc.NewSession()
	if err != nil {
		return l, false, err
	}
	defer s.Close()
	w, err := s.StdinPipe()
	if err != nil {
		return l, false, err
	}
	r, err := s.StdoutPipe()
	if err != nil {
		return l, false, err
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		return l, false, err
	}
	defer w.Close()
	return exchangeLimits(r, w)
}

// exchangeLimits runs the INIT/VERSION handshake and, where the server's
// VERSION offers limits@openssh.com "1", the limits request, on r and w.
func exchangeLimits(r io.Reader, w io.Writer) (l sftpLimits, ok bool, err error) {
	if _, err := w.Write([]byte{0, 0, 0, 5, fxpInit, 0, 0, 0, fxVersion}); err != nil {
		return l, false, err
	}
	typ, p, err := readPacket(r)
	if err != nil {
		return l, false, err
	}
	if typ != fxpVersion || len(p) < 4 {
		return l, false, fmt.Errorf("sftp: limits: packet type %d where VERSION was expected", typ)
	}
	p = p[4:]
	offered := false
	for len(p) > 0 {
		var name, data []byte
		if name, p, err = sftpString(p); err == nil {
			data, p, err = sftpString(p)
		}
		if err != nil {
			return l, false, fmt.Errorf("sftp: limits: VERSION extensions: %w", err)
		}
		if string(name) == "limits@openssh.com" && string(data) == "1" {
			offered = true
		}
	}
	if !offered {
		return l, false, nil
	}
	const id = 1
	name := "limits@openssh.com"
	req := binary.BigEndian.AppendUint32(nil, uint32(1+4+4+len(name)))
	req = append(req, fxpExtended)
	req = binary.BigEndian.AppendUint32(req, id)
	req = binary.BigEndian.AppendUint32(req, uint32(len(name)))
	req = append(req, name...)
	if _, err := w.Write(req); err != nil {
		return l, false, err
	}
	typ, p, err = readPacket(r)
	if err != nil {
		return l, false, err
	}
	switch {
	case typ == fxpStatus:
		return l, false, nil // offered but refused: keep the defaults
	case typ != fxpExtendedReply || len(p) < 4+32 || binary.BigEndian.Uint32(p) != id:
		return l, false, fmt.Errorf("sftp: limits: unexpected reply (type %d, %d bytes)", typ, len(p))
	}
	p = p[4:]
	l = sftpLimits{packet: binary.BigEndian.Uint64(p[0:]), read: binary.BigEndian.Uint64(p[8:]),
		write: binary.BigEndian.Uint64(p[16:]), handles: binary.BigEndian.Uint64(p[24:])}
	return l, true, nil
}

// readPacket reads one SFTP packet (at most 256 KiB) and returns its type
// and the rest of its body.
func readPacket(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("sftp: limits: read: %w", err)
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < 1 || n > 256<<10 {
		return 0, nil, fmt.Errorf("sftp: limits: packet of %d bytes", n)
	}
	p := make([]byte, n-1)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("sftp: limits: read: %w", err)
	}
	return h[4], p, nil
}

func sftpString(p []byte) (s, rest []byte, err error) {
	if len(p) < 4 {
		return nil, nil, errors.New("short string")
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, nil, errors.New("short string")
	}
	return p[4 : 4+n], p[4+n:], nil
}
