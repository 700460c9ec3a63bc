package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FaultsFile is the name, under Root, of the control file through which
// another process (a test running `yktgw banksim` as a separate binary)
// sets the faults at run time. The simulator looks at it about twice a
// second and applies it (as SetFaults) whenever its content changes.
const FaultsFile = "sim-faults.json"

// faultsJSON is Faults with durations written as Go duration strings.
type faultsJSON struct {
	DropMidUpload   int    `json:"drop_mid_upload,omitempty"`
	SlowWrites      string `json:"slow_writes,omitempty"`
	DuplicateReturn bool   `json:"duplicate_return,omitempty"`
	MalformedReturn int    `json:"malformed_return,omitempty"`
	LateReturn      string `json:"late_return,omitempty"`
	WithholdReturns bool   `json:"withhold_returns,omitempty"`
	// Serial distinguishes two writes of the same faults (so that, say,
	// drop_mid_upload 1 can be armed again); WriteFaultsFile sets it.
	Serial int64 `json:"serial,omitempty"`
}

// WriteFaultsFile sets the faults of a simulator serving root, possibly
// in another process (atomic write; applied within about a second).
func WriteFaultsFile(root string, f Faults) error {
	j := faultsJSON{DropMidUpload: f.DropMidUpload, DuplicateReturn: f.DuplicateReturn,
		MalformedReturn: f.MalformedReturn, WithholdReturns: f.WithholdReturns, Serial: time.Now().UnixNano()}
	if f.SlowWrites > 0 {
		j.SlowWrites = f.SlowWrites.String()
	}
	if f.LateReturn > 0 {
		j.LateReturn = f.LateReturn.String()
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(root, "."+FaultsFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("sim: faults file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(root, FaultsFile)); err != nil {
		return fmt.Errorf("sim: faults file: %w", err)
	}
	return nil
}

// parseFaults reads the control file's content.
func parseFaults(b []byte) (Faults, error) {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Faults{}, err
	}
	f := Faults{DropMidUpload: j.DropMidUpload, DuplicateReturn: j.DuplicateReturn,
		MalformedReturn: j.MalformedReturn, WithholdReturns: j.WithholdReturns}
	var err error
	dur := func(name, s string) time.Duration {
		if s == "" || err != nil {
			return 0
		}
		d, perr := time.ParseDuration(s)
		if perr != nil || d < 0 {
			err = fmt.Errorf("%s: %q is not a duration", name, s)
		}
		return d
	}
	f.SlowWrites = dur("slow_writes", j.SlowWrites)
	f.LateReturn = dur("late_return", j.LateReturn)
	if f.DropMidUpload < 0 || f.MalformedReturn < 0 {
		err = errors.Join(err, errors.New("counts must be >= 0"))
	}
	return f, err
}

// checkFaultsFile applies the control file when its content changed since
// the last look.
func (s *Sim) checkFaultsFile() {
	b, err := s.root.ReadFile(FaultsFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		s.log.Error("faults file not readable", "err", err)
		return
	}
	if string(b) == s.lastFaults {
		return
	}
	s.lastFaults = string(b)
	f, err := parseFaults(b)
	if err != nil {
		s.log.Error("faults file ignored", "file", FaultsFile, "err", err)
		return
	}
	s.SetFaults(f)
}
