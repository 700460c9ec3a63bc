package sftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"yktgw/banks"
	"yktgw/banks/banktest"
	"yktgw/internal/sshtest"
)

func TestPacketSize(t *testing.T) {
	for _, c := range []struct {
		name string
		l    sftpLimits
		want int
	}{
		{"OpenSSH", sftpLimits{packet: 256 << 10, read: 256<<10 - 1024, write: 256<<10 - 1024, handles: 0}, 256<<10 - 1024},
		{"nothing stated", sftpLimits{}, maxPacket},
		{"larger than pkg/sftp reads", sftpLimits{packet: 1 << 20, read: 1 << 20, write: 1 << 20}, maxPacket},
		{"write smaller than read", sftpLimits{read: 200 << 10, write: 64 << 10}, 64 << 10},
		{"read smaller than write", sftpLimits{read: 40000, write: 200 << 10}, 40000},
		{"packet leaves room for the request", sftpLimits{packet: 100000, read: 1 << 20, write: 1 << 20}, 100000 - 1024},
		{"tiny packet", sftpLimits{packet: 1000}, defaultPacket},
		{"below the default", sftpLimits{write: 4096}, defaultPacket},
	} {
		if got := c.l.packetSize(); got != c.want {
			t.Errorf("%s: packetSize %d, want %d", c.name, got, c.want)
		}
	}
	if got := concurrency(defaultPacket); got != 64 {
		t.Errorf("concurrency(32 KiB) = %d, want pkg/sftp's 64", got)
	}
	if got := concurrency(maxPacket); got != 8 {
		t.Errorf("concurrency(%d) = %d, want 8 (2 MiB in flight)", maxPacket, got)
	}
}

// fakeServer answers the INIT and, when asked, the limits request.
func fakeServer(t *testing.T, exts [][2]string, reply []byte) (io.Reader, *bytes.Buffer) {
	t.Helper()
	pkt := func(typ byte, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
		return append(append(b, typ), body...)
	}
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
	}
	v := binary.BigEndian.AppendUint32(nil, 3)
	for _, e := range exts {
		v = str(str(v, e[0]), e[1])
	}
	out := pkt(fxpVersion, v)
	if reply != nil {
		out = append(out, reply...)
	}
	return bytes.NewReader(out), &bytes.Buffer{}
}

func TestExchangeLimits(t *testing.T) {
	le := func(typ byte, id uint32, vals ...uint64) []byte {
		body := binary.BigEndian.AppendUint32(nil, id)
		for _, v := range vals {
			body = binary.BigEndian.AppendUint64(body, v)
		}
		b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
		return append(append(b, typ), body...)
	}
	limits := [2]string{"limits@openssh.com", "1"}
	other := [2]string{"fsync@openssh.com", "1"}

	r, w := fakeServer(t, [][2]string{other}, nil)
	if _, ok, err := exchangeLimits(r, w); ok || err != nil {
		t.Errorf("no limits@openssh.com offered: ok %v err %v, want false, nil", ok, err)
	}
	if !bytes.Equal(w.Bytes(), []byte{0, 0, 0, 5, fxpInit, 0, 0, 0, 3}) {
		t.Errorf("sent %x, want INIT v3 only", w.Bytes())
	}

	r, w = fakeServer(t, [][2]string{other, limits}, le(fxpExtendedReply, 1, 1<<18, 1<<18-1024, 1<<18-1024, 0))
	l, ok, err := exchangeLimits(r, w)
	if !ok || err != nil || l != (sftpLimits{packet: 1 << 18, read: 1<<18 - 1024, write: 1<<18 - 1024}) {
		t.Errorf("limits: %+v ok %v err %v", l, ok, err)
	}
	if want := "\x00\x00\x00\x1b\xc8\x00\x00\x00\x01\x00\x00\x00\x12limits@openssh.com"; !bytes.HasSuffix(w.Bytes(), []byte(want)) {
		t.Errorf("limits request %q, want %q", w.Bytes()[9:], want)
	}

	r, w = fakeServer(t, [][2]string{limits}, le(fxpStatus, 1, 0))
	if _, ok, err := exchangeLimits(r, w); ok || err != nil {
		t.Errorf("limits refused (STATUS): ok %v err %v, want false, nil", ok, err)
	}
	r, w = fakeServer(t, [][2]string{limits}, le(fxpExtendedReply, 7, 1, 2, 3, 4))
	if _, ok, err := exchangeLimits(r, w); ok || err == nil {
		t.Errorf("reply to another id: ok %v err %v, want an error", ok, err)
	}
	r, w = fakeServer(t, [][2]string{limits}, le(fxpExtendedReply, 1, 1))
	if _, ok, err := exchangeLimits(r, w); ok || err == nil {
		t.Errorf("short reply: ok %v err %v, want an error", ok, err)
	}
	r, w = fakeServer(t, [][2]string{{"limits@openssh.com", "2"}}, nil)
	if _, ok, err := exchangeLimits(r, w); ok || err != nil {
		t.Errorf("limits@openssh.com version 2: ok %v err %v, want false, nil", ok, err)
	}
	if _, _, err := exchangeLimits(bytes.NewReader([]byte{0xff, 0, 0, 0, 2}), &bytes.Buffer{}); err == nil {
		t.Error("a 4 GB packet was accepted")
	}
}

// TestLargeRequestsOpenSSH: against OpenSSH the channel uses the server's
// 255 KiB requests, and files of a size no request size divides arrive,
// probe and read back whole; the in-process server (no limits) and
// defaultPacket keep 32 KiB.
func TestLargeRequestsOpenSSH(t *testing.T) {
	srv := sshtest.StartOpenSSH(t)
	b := newDirBank(t, srv.Dir)
	ch := open(t, options(srv, b))
	defer ch.Close()
	if got := mustConn(t, ch).packet; got != 256<<10-1024 {
		t.Errorf("request size against OpenSSH %d, want %d", got, 256<<10-1024)
	}
	data := banktest.RandomBytes(t, 3<<20+12345)
	o := banktest.NewOutbound("T", "big.dat", data)
	ctx := context.Background()
	if _, err := ch.Send(ctx, o); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.out, "big.dat")); !bytes.Equal(got, data) {
		t.Fatalf("delivered %d bytes differing from the %d sent", len(got), len(data))
	}
	if res, err := ch.Probe(ctx, o); res != banks.ProbeArrived || err != nil {
		t.Errorf("Probe: %v %v, want arrived", res, err)
	}
	b.PutFeedback(t, "FB_big.txt", data)
	b.Backdate(t, "FB_big.txt", 2*testMinAge)
	rc, err := ch.OpenFeedback(ctx, banks.FeedbackRef{ID: "FB_big.txt", Size: int64(len(data))})
	if err != nil {
		t.Fatalf("OpenFeedback: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("feedback read back: %d bytes, err %v", len(got), err)
	}

	def := open(t, options(srv, b))
	defer def.Close()
	def.defaultPacket = true
	if got := mustConn(t, def).packet; got != defaultPacket {
		t.Errorf("request size with defaultPacket %d, want %d", got, defaultPacket)
	}
	in := sshtest.StartInProcess(t)
	ib := newDirBank(t, in.Dir)
	ich := open(t, options(in.Server, ib))
	defer ich.Close()
	if got := mustConn(t, ich).packet; got != defaultPacket {
		t.Errorf("request size against the in-process server %d, want %d", got, defaultPacket)
	}
}

// FuzzExchangeLimits: whatever a server answers to the limits question, the
// exchange returns (no panic, no read past a packet) and a request size
// taken from it stays between SFTP's default and maxPacket.
func FuzzExchangeLimits(f *testing.F) {
	name := "limits@openssh.com"
	version := binary.BigEndian.AppendUint32(nil, uint32(1+4+4+len(name)+4+1))
	version = append(version, fxpVersion, 0, 0, 0, 3)
	version = append(binary.BigEndian.AppendUint32(version, uint32(len(name))), name...)
	version = append(binary.BigEndian.AppendUint32(version, 1), '1')
	reply := append(binary.BigEndian.AppendUint32(nil, 1+4+32), fxpExtendedReply, 0, 0, 0, 1)
	for _, v := range []uint64{256 << 10, 255 << 10, 255 << 10, 0} {
		reply = binary.BigEndian.AppendUint64(reply, v)
	}
	f.Add(append(version, reply...))
	f.Add([]byte{0, 0, 0, 5, fxpVersion, 0, 0, 0, 3})
	f.Add([]byte{0xff, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, server []byte) {
		l, ok, err := exchangeLimits(bytes.NewReader(server), io.Discard)
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if ok {
			if p := l.packetSize(); p < defaultPacket || p > maxPacket || concurrency(p) < 1 {
				t.Fatalf("limits %+v give a request size of %d", l, p)
			}
		}
	})
}
