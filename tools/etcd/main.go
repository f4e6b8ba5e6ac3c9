// The etcd the local control plane runs (scripts/cluster.sh), built from go.etcd.io by
// scripts/provision.sh: etcd's own command, whose main is this one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
