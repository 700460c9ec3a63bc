package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/internal/gen"
)

// baselineTimes are one run of the bare pipeline.
type baselineTimes struct {
	Render, Encrypt, Upload time.Duration
	PlainBytes              int64
}

// renderPlain writes the batch's records once as the plain DEMO bank file
// (one file, all records, banks/format) and returns its size.
func renderPlain(path string, p *banks.Profile, spec gen.Spec, hdr gen.Header) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	fb := format.Batch{BankBatchNo: "DEMO0000000001", FileSeq: 1, Date: time.Now(), Count: hdr.TotalCount, TotalFen: hdr.TotalFen,
		Memo: hdr.Memo, SubsidyCode: hdr.Subsidy.Code, SubsidyName: hdr.Subsidy.Name, Tenant: hdr.Tenant, Period: hdr.Period, BatchID: hdr.BatchID}
	recs := func(yield func(format.Record, error) bool) {
		_ = gen.Records(spec, func(r gen.Record) error {
			if !yield(format.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber, Account: r.Account, AccountKind: r.AccountKind,
				AmountFen: r.AmountFen, Remark: r.Remark}, nil) {
				return errStop
			}
			return nil
		})
	}
	if err := p.Outbound.Render(bw, fb, recs); err != nil {
		return 0, fmt.Errorf("bench: render: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

// runBaseline renders the plain file, encrypts it with openssl enc
// -sm4-cbc and puts it with OpenSSH sftp -b to the bench sshd.
func runBaseline(e *env, rep int) (baselineTimes, error) {
	var bt baselineTimes
	dir := filepath.Join(e.work, "baseline", strconv.Itoa(rep))
	remote := filepath.Join(e.work, "remote", "baseline", strconv.Itoa(rep))
	for _, d := range []string{dir, remote} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return bt, err
		}
	}
	defer os.RemoveAll(dir)
	defer os.RemoveAll(remote)
	plain := filepath.Join(dir, "DEMO_PAY_DEMO0000000001.txt")
	t := time.Now()
	n, err := renderPlain(plain, e.profile, e.spec, e.hdr)
	if err != nil {
		return bt, err
	}
	bt.Render, bt.PlainBytes = time.Since(t), n

	key, iv := make([]byte, 16), make([]byte, 16)
	rand.Read(key)
	rand.Read(iv)
	enc := plain + ".enc"
	t = time.Now()
	if out, err := exec.Command("openssl", "enc", "-sm4-cbc", "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv),
		"-in", plain, "-out", enc).CombinedOutput(); err != nil {
		return bt, fmt.Errorf("bench: openssl enc -sm4-cbc: %v: %s", err, out)
	}
	bt.Encrypt = time.Since(t)

	batch := filepath.Join(dir, "sftp.batch")
	if err := os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/\n", enc, remote)), 0o600); err != nil {
		return bt, err
	}
	t = time.Now()
	if out, err := exec.Command("sftp", "-q", "-b", batch, "-i", e.ks.ClientKeyFile, "-P", strconv.Itoa(e.sshd.Port),
		"-o", "UserKnownHostsFile="+e.sshd.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", e.sshd.User+"@127.0.0.1").CombinedOutput(); err != nil {
		return bt, fmt.Errorf("bench: sftp put: %v: %s", err, out)
	}
	bt.Upload = time.Since(t)
	encSt, err := os.Stat(enc)
	if err != nil {
		return bt, err
	}
	upSt, err := os.Stat(filepath.Join(remote, filepath.Base(enc)))
	if err != nil || upSt.Size() != encSt.Size() {
		return bt, fmt.Errorf("bench: sftp put: remote copy missing or short (%v)", err)
	}
	return bt, nil
}
