//go:build tools

// Package tools names the commands scripts/provision.sh builds from this module, so that
// `go mod tidy` keeps what they need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
