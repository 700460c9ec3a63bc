package main

// The one place that compiles the bank channel plugins in.
import _ "yktgw/banks/all"
