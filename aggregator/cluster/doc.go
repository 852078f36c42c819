// Package cluster joins an aggregator to its peers with gossip
// (hashicorp/memberlist) and tells the node, and through its acks the
// agents, which aggregators are alive.
//
// Each node gossips a small Meta: the QUIC address agents ship to, the API
// address `avila cluster status` reads, its load and agent count, whether it
// is draining, and its version. A node starts by joining any of its seeds and
// keeps trying the seeds it is not connected to, so a cluster whose nodes
// start in any order, or that was split by a network fault, comes together
// again. Gossip can be encrypted with a shared AES key; nodes with another
// key cannot join or read it.
//
// Each node probes every peer each probe interval: a peer that does not
// answer is listed as suspect at once (memberlist suspects too, but keeps it
// to itself), and gossip declares it dead a few intervals later; dead
// members stay listed as dead for a minute. Members carry their start time
// as an incarnation, so agents tell a restarted node from the one that died.
//
// Membership is advisory: it steers agents, it is not needed for
// correctness. Exactly-once storage rests on batch keys in PostgreSQL, so an
// agent that sends to a node others believe dead, or two nodes with a
// different view for a while, lose and duplicate nothing.
package cluster
