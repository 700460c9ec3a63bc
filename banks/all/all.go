// Package all compiles in every bank channel plugin: import it for its side
// effects (each plugin registers itself with banks.Register in init()).
// It is the one place that lists the plugins; it holds no code of its own.
package all

import (
	// The AMQP 0-9-1 channel ("amqp").
	_ "yktgw/banks/amqp"
	// The HTTPS direct-connect channel ("https").
	_ "yktgw/banks/https"
	// The SFTP channel ("sftp").
	_ "yktgw/banks/sftp"
)
