// Command gcp-peer is the go-control-plane peer of meshpilot's real-path benchmark
// (bench/real.bench.ts): an ADS server on go-control-plane's SnapshotCache that serves,
// over TLS, the resource states the bench recorded from meshpilot, one snapshot shared
// by every node. The bench steers it over stdin and reads JSON lines from stdout:
//
//	stdin:  "set <i>"  publish state i (each type versioned by a hash of its content)
//	        "mem"      report heap and RSS after a full collection
//	stdout: {"event":"listening","port":N}
//	        {"event":"set","index":i,"atMs":<epoch ms just before SetSnapshot>}
//	        {"event":"mem","heapAlloc":B,"heapSys":B,"rss":B}
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// meshNode puts every node on one snapshot, as a control plane serving one shared view would.
type meshNode struct{}

func (meshNode) ID(*core.Node) string { return "mesh" }

// stateFile is what the bench writes: each state maps a type URL to base64 resource bytes.
type stateFile struct {
	States []map[string][]string `json:"states"`
}

func newMessage(typeURL string) (proto.Message, error) {
	switch typeURL {
	case resourcev3.ClusterType:
		return &cluster.Cluster{}, nil
	case resourcev3.EndpointType:
		return &endpoint.ClusterLoadAssignment{}, nil
	case resourcev3.ListenerType:
		return &listener.Listener{}, nil
	case resourcev3.RouteType:
		return &route.RouteConfiguration{}, nil
	case resourcev3.SecretType:
		return &tlsv3.Secret{}, nil
	}
	return nil, fmt.Errorf("unsupported type %s", typeURL)
}

func loadSnapshots(path string) ([]*cachev3.Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f stateFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	snaps := make([]*cachev3.Snapshot, 0, len(f.States))
	for i, state := range f.States {
		resources := map[resourcev3.Type][]types.Resource{}
		for typeURL, items := range state {
			for _, b64 := range items {
				bytes, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return nil, err
				}
				msg, err := newMessage(typeURL)
				if err != nil {
					return nil, err
				}
				if err := proto.Unmarshal(bytes, msg); err != nil {
					return nil, fmt.Errorf("state %d %s: %w", i, typeURL, err)
				}
				resources[typeURL] = append(resources[typeURL], msg)
			}
		}
		// Each type's version is a hash of its content, as meshpilot's are, so a new state
		// re-sends only the types that changed rather than all five.
		snap := &cachev3.Snapshot{}
		for typeURL, items := range resources {
			idx := cachev3.GetResponseType(typeURL)
			snap.Resources[idx] = cachev3.NewResources(contentVersion(state[typeURL]), items)
		}
		snaps = append(snaps, snap)
	}
	return snaps, nil
}

func contentVersion(items []string) string {
	h := sha256.New()
	for _, b64 := range items {
		h.Write([]byte(b64))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func rssBytes() uint64 {
	// VmRSS from /proc, the same figure Node's process.memoryUsage().rss reports.
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func main() {
	resources := flag.String("resources", "", "JSON file of resource states")
	certFile := flag.String("cert", "", "serving certificate (PEM)")
	keyFile := flag.String("key", "", "serving key (PEM)")
	flag.Parse()

	snaps, err := loadSnapshots(*resources)
	if err != nil || len(snaps) == 0 {
		log.Fatalf("load %s: %v (%d states)", *resources, err, len(snaps))
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("load certificate: %v", err)
	}

	ctx := context.Background()
	// ADS mode: named requests are answered once they name every resource of the type,
	// which is how go-control-plane keeps an ADS stream consistent.
	cache := cachev3.NewSnapshotCache(true, meshNode{}, nil)
	if err := cache.SetSnapshot(ctx, "mesh", snaps[0]); err != nil {
		log.Fatalf("set snapshot: %v", err)
	}
	srv := serverv3.NewServer(ctx, cache, nil)
	grpcServer := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(grpcServer, srv)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	go func() {
		if err := grpcServer.Serve(lis); err != nil {
			log.Printf("serve: %v", err)
		}
	}()
	emit(map[string]any{"event": "listening", "port": lis.Addr().(*net.TCPAddr).Port})

	// The bench closing stdin (or exiting) ends the peer.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "set":
			i, err := strconv.Atoi(fields[1])
			if err != nil || i < 0 || i >= len(snaps) {
				log.Fatalf("bad state index %q", fields[1])
			}
			at := float64(time.Now().UnixNano()) / 1e6
			if err := cache.SetSnapshot(ctx, "mesh", snaps[i]); err != nil {
				log.Fatalf("set snapshot: %v", err)
			}
			emit(map[string]any{"event": "set", "index": i, "atMs": at})
		case "mem":
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			emit(map[string]any{"event": "mem", "heapAlloc": m.HeapAlloc, "heapSys": m.HeapSys, "rss": rssBytes()})
		}
	}
	grpcServer.Stop()
}
