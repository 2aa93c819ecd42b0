// Package upgrades holds the state migrations this binary knows, each
// registered with gov under the name an upgrade proposal schedules. A
// release that changes the state machine adds one file here: its init
// registers the migration, and docs/governance.md says how operators move
// to it. The chain imports this package, so every node binary carries
// them all.
//
// A migration runs once, at the upgrade's height, before anything else in
// that block; it must be deterministic like any state change, and an
// error from it halts the chain with the state untouched.
package upgrades

// DemoName is an upgrade only a binary built with the tag
// agora_upgrade_demo knows (demo.go): the upgrade test schedules it, sees
// the network halt with the binary it started with, and restarts every
// node with one built with the tag.
const DemoName = "demo-v2"
