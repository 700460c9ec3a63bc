package crypto

import (
	"os"
	_ "unsafe" // go:linkname

	_ "github.com/emmansun/gmsm/sm4" // makes sure internal/sm4 is linked and initialised before this package
)

// gmsm v0.44.1 decides once, in a package-level variable of internal/sm4,
// whether single-block SM4 (cipher.Block.Encrypt/Decrypt: the GCM tag mask,
// every block of CBC encryption, the PBES2 key wrap) uses the AES-NI/GFNI
// assembly (constant time) or the table-based Go code (encryptBlockGo, whose
// table lookups are indexed by key- and data-dependent bytes). The variable is
// set from FORCE_SM4BLOCK_AESNI=1 while the process starts, before any of our
// code runs, so setting the variable from Go (os.Setenv) would be too late.
// We therefore set it directly. The link fails loudly if gmsm renames it, which
// is what we want: the pin to v0.44.1 is deliberate.
//
//go:linkname sm4UseAESNISingleBlock github.com/emmansun/gmsm/internal/sm4.useAESNI4SingleBlock
var sm4UseAESNISingleBlock bool

//go:linkname sm4SupportsAES github.com/emmansun/gmsm/internal/sm4.supportsAES
var sm4SupportsAES bool

// envForceSM4 is the environment variable gmsm reads (documented in DOMAIN.md).
const envForceSM4 = "FORCE_SM4BLOCK_AESNI"

// ctSetByEnv records whether the operator had already set the variable.
var ctSetByEnv = os.Getenv(envForceSM4) == "1"

func init() {
	// Only meaningful where gmsm uses the AES-NI based implementation; on a CPU
	// without AES-NI gmsm falls back to the generic (table-based) cipher for
	// everything and there is no constant-time path to choose.
	if sm4SupportsAES {
		sm4UseAESNISingleBlock = true
	}
}

// SM4Path describes which SM4 implementation this process uses, for the
// startup log and for tests: "aesni" (bulk and single block in AES-NI/GFNI
// assembly, constant time), "aesni-bulk-table-single" (should never be seen:
// single blocks table based), or "generic" (no AES-NI: table based, not
// constant time; yktgw logs a warning).
func SM4Path() string {
	switch {
	case !sm4SupportsAES:
		return "generic"
	case sm4UseAESNISingleBlock:
		return "aesni"
	default:
		return "aesni-bulk-table-single"
	}
}

// SM4ConstantTime reports whether every SM4 block operation in this process
// runs in constant-time assembly.
func SM4ConstantTime() bool { return SM4Path() == "aesni" }
