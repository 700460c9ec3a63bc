package crypto

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm4"
)

func TestSM4ConstantTimeFlagSet(t *testing.T) {
	if !sm4SupportsAES {
		skipOrFail(t, "CPU without AES-NI: gmsm has no constant-time SM4 here")
	}
	if !sm4UseAESNISingleBlock || SM4Path() != "aesni" || !SM4ConstantTime() {
		t.Fatalf("single-block SM4 is not on the AES-NI path (path %q)", SM4Path())
	}
}

// The flag is set by this package, not by the environment: a child process
// started with FORCE_SM4BLOCK_AESNI unset (and set to "0") still reports the
// constant-time path.
func TestSM4ConstantTimeWithoutEnvironment(t *testing.T) {
	if os.Getenv("YKT_CT_CHILD") == "1" {
		if ctSetByEnv {
			t.Fatal("child saw FORCE_SM4BLOCK_AESNI=1")
		}
		if SM4Path() != "aesni" {
			t.Fatalf("child path %q", SM4Path())
		}
		return
	}
	if !sm4SupportsAES {
		skipOrFail(t, "CPU without AES-NI")
	}
	for _, v := range []string{"", "0"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSM4ConstantTimeWithoutEnvironment$", "-test.v")
		env := []string{"YKT_CT_CHILD=1"}
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, envForceSM4+"=") {
				env = append(env, e)
			}
		}
		if v != "" {
			env = append(env, envForceSM4+"="+v)
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("child with %s=%q: %v\n%s", envForceSM4, v, err, out)
		}
	}
}

// profileSingleBlocks encrypts single SM4 blocks for d under a CPU profile
// and returns the (gunzipped) profile: its string table names every sampled
// function.
func profileSingleBlocks(t *testing.T, d time.Duration) []byte {
	t.Helper()
	block, err := sm4.NewCipher(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("CPU profile unavailable: %v", err)
	}
	b := make([]byte, 16)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			block.Encrypt(b, b)
		}
	}
	pprof.StopCPUProfile()
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Proof of the path actually taken: a CPU profile of single-block SM4
// encryptions samples gmsm's assembly (encryptBlockAsm) and never the
// table-based encryptBlockGo; with the flag cleared the same measurement
// shows encryptBlockGo, so the test can tell the two apart.
func TestSM4SingleBlockPathIsAssembly(t *testing.T) {
	if !sm4SupportsAES {
		skipOrFail(t, "CPU without AES-NI")
	}
	if testing.Short() {
		t.Skip("profiles for a second")
	}
	const asm, tbl = "internal/sm4.encryptBlockAsm", "internal/sm4.encryptBlockGo"
	p := profileSingleBlocks(t, 400*time.Millisecond)
	if !bytes.Contains(p, []byte(asm)) || bytes.Contains(p, []byte(tbl)) {
		t.Fatalf("profile: asm sampled %v, table sampled %v; want asm only",
			bytes.Contains(p, []byte(asm)), bytes.Contains(p, []byte(tbl)))
	}
	sm4UseAESNISingleBlock = false
	defer func() { sm4UseAESNISingleBlock = true }()
	p = profileSingleBlocks(t, 400*time.Millisecond)
	if !bytes.Contains(p, []byte(tbl)) {
		t.Fatal("control: with the flag cleared the table-based path was not seen; the proof is void")
	}
}
