//go:build tools

// Package tools pins the JobSet controller (a main package) as a dependency of this module.
package tools

import _ "sigs.k8s.io/jobset"
