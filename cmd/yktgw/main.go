// Command yktgw is the bank gateway of the subsidy one-card platform: one binary
// whose subcommands are thin calls into the concept packages.
package main

import "os"

func main() { os.Exit(execute(os.Args[1:])) }
