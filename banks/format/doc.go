// Package format owns the declarative bank file layouts: the YAML layout
// language (see LAYOUTS.md), rendering outbound batch files (报盘) and parsing
// return files (回盘) in GB18030, GBK or UTF-8, fixed-width, delimited or XML.
//
// Rendering and parsing stream: Render reads records from an iterator and
// writes through a bufio.Writer, Parse reads through a bufio.Reader and hands
// each result to a callback. Per-record memory is a reused line buffer; the only
// state that grows with a return file is the duplicate-key set (one bit per
// sequence number, or an 8-byte hash per record for composite keys) and the
// list of problems, which is capped at MaxErrors.
//
// This package must not know about spools, channels, banks' code meanings
// (package banks maps codes to reasons) or cryptography; it only turns records
// into bytes and bytes into results, and refuses anything it cannot represent
// exactly. It never truncates a value and never drops a result code.
package format
