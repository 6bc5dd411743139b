package chunkscope

// Version is the version of this module and of the chunkscope API it speaks; it is released under
// the tag clients/go/v<Version> (scripts/version.py keeps it equal to the repository's VERSION).
const Version = "0.2.0"
