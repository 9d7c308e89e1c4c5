module lfparsers

go 1.19
