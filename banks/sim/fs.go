package sim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// handlers serve one SFTP session from the simulator's root directory. All
// file access goes through an *os.Root, so no request can reach outside it
// (".." and symbolic links leaving the tree are refused by the kernel-backed
// checks of os.Root, not by string handling alone).
type handlers struct {
	s  *Sim
	sc *ssh.ServerConn // the session's connection, closed by the drop fault
}

var (
	_ sftp.FileReader           = (*handlers)(nil)
	_ sftp.FileWriter           = (*handlers)(nil)
	_ sftp.PosixRenameFileCmder = (*handlers)(nil)
	_ sftp.LstatFileLister      = (*handlers)(nil)
)

// rel turns an SFTP request path (absolute, cleaned by pkg/sftp against the
// start directory "/") into a name relative to the root.
func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

func (h *handlers) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	f, err := h.s.root.Open(rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		_ = f.Close()
		return nil, fmt.Errorf("%s: is a directory", r.Filepath)
	}
	return f, nil
}

func (h *handlers) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	name := rel(r.Filepath)
	pf := r.Pflags()
	flag := os.O_WRONLY
	if pf.Read {
		flag = os.O_RDWR
	}
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	// pf.Append is not passed on: WriteAt and O_APPEND conflict, and the
	// client gives offsets anyway.
	f, err := h.s.root.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	w := &writer{h: h, f: f, name: name}
	if h.s.inOutbound(name) {
		w.slow = h.s.faults().SlowWrites
		w.drop.Store(h.s.takeDrop())
	}
	return w, nil
}

// writer is one open upload. It fsyncs on close (the server offers no
// fsync@openssh.com: pkg/sftp's request server cannot, so durability is
// given at close) and tells the simulator when a final-named outbound file
// has been written completely.
type writer struct {
	h      *handlers
	f      *os.File
	name   string
	slow   time.Duration
	drop   atomic.Bool // pkg/sftp calls WriteAt from several workers at once
	failed atomic.Bool
	once   sync.Once
}

func (w *writer) WriteAt(p []byte, off int64) (int, error) {
	if w.slow > 0 {
		time.Sleep(w.slow)
	}
	if w.drop.CompareAndSwap(true, false) {
		// The fault: half of this request's bytes reach the disk, then the
		// network "fails". The file keeps its (temporary) name.
		n, _ := w.f.WriteAt(p[:len(p)/2], off)
		w.failed.Store(true)
		w.h.s.noteDrop(w.name, off+int64(n))
		_ = w.h.sc.Close()
		return n, errors.New("sim: connection dropped (fault)")
	}
	n, err := w.f.WriteAt(p, off)
	if err != nil {
		w.failed.Store(true)
	}
	return n, err
}

// TransferError is called by pkg/sftp when the session ends with the file
// still open (a dropped connection): the upload is incomplete.
func (w *writer) TransferError(error) { w.failed.Store(true) }

func (w *writer) Close() error {
	var err error
	w.once.Do(func() {
		serr := w.f.Sync()
		err = w.f.Close()
		if err == nil {
			err = serr
		}
		if err == nil && !w.failed.Load() {
			w.h.s.arrived(w.name)
		}
	})
	return err
}

func (h *handlers) Filecmd(r *sftp.Request) error {
	name := rel(r.Filepath)
	switch r.Method {
	case "Setstat":
		// Accepted and ignored except for a size change (truncate), which
		// some clients use; times and modes are the bank's business.
		if r.AttrFlags().Size {
			f, err := h.s.root.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(int64(r.Attributes().Size))
		}
		return nil
	case "Rename":
		return h.rename(name, rel(r.Target), false)
	case "Rmdir", "Remove":
		if name == "." {
			return os.ErrPermission
		}
		fi, err := h.s.root.Lstat(name)
		if err != nil {
			return err
		}
		if fi.IsDir() != (r.Method == "Rmdir") {
			return fmt.Errorf("%s %s: wrong kind of file", strings.ToLower(r.Method), r.Filepath)
		}
		return h.s.root.Remove(name)
	case "Mkdir":
		return h.s.root.Mkdir(name, 0o755)
	case "Link", "Symlink":
		return sftp.ErrSSHFxOpUnsupported
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename replaces the target if it exists (posix-rename@openssh.com).
func (h *handlers) PosixRename(r *sftp.Request) error {
	return h.rename(rel(r.Filepath), rel(r.Target), true)
}

// rename: plain SFTP rename refuses an existing target (link, then unlink
// the old name: atomic against a concurrent creator); posix-rename replaces.
func (h *handlers) rename(from, to string, replace bool) error {
	if from == "." || to == "." {
		return os.ErrPermission
	}
	if replace {
		if err := h.s.root.Rename(from, to); err != nil {
			return err
		}
	} else {
		fi, err := h.s.root.Lstat(from)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if _, err := h.s.root.Lstat(to); err == nil {
				return os.ErrExist
			}
			if err := h.s.root.Rename(from, to); err != nil {
				return err
			}
		} else {
			if err := h.s.root.Link(from, to); err != nil {
				return err
			}
			if err := h.s.root.Remove(from); err != nil {
				return err
			}
		}
	}
	h.s.arrived(to)
	return nil
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

func (h *handlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name := rel(r.Filepath)
	switch r.Method {
	case "List":
		d, err := h.s.root.Open(name)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		out := make(listerAt, 0, len(ents))
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, fi)
		}
		return out, nil
	case "Stat":
		fi, err := h.s.root.Stat(name)
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (h *handlers) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.s.root.Lstat(rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}
