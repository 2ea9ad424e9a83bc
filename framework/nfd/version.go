package nfd

import (
	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// NFD is the Node Feature Discovery release built and deployed
// (sigs.k8s.io/node-feature-discovery), pinned in framework/versions.
// v0.17 serves only the NodeFeature API: nfd-worker writes NodeFeature
// objects, nfd-master evaluates NodeFeatureRules against them and labels
// nodes.
const NFD = versions.NFD

// Module is NFD's Go module path.
const Module = "sigs.k8s.io/node-feature-discovery"

// ImageRepository is the local repository the NFD image is tagged into.
const ImageRepository = versions.NFDImageRepository

// fixture returns an embedded file of fixtures/nfd.
func fixture(name string) []byte { return fixtures.MustRead("nfd/" + name) }
