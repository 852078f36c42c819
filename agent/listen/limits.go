package listen

// unknownFileLimit stands in for the open-file limit where the platform
// has none to read.
const unknownFileLimit = 4096

// maxTotalDefault bounds the default total cap by memory rather than
// files: an idle connection holds its goroutine's stack and a read buffer,
// some KiB each, so 16384 of them stay within a few hundred MiB. A file limit of a million would otherwise allow gigabytes.
const maxTotalDefault = 16384

// maxPerIPDefault bounds the default per-address cap: a browser keeps up to
// six connections to a host, and an office or a mobile carrier's NAT puts
// many browsers behind one address.
const maxPerIPDefault = 1024

// DefaultCaps are the connection caps for a process that may hold files
// open files (0: unknown). An eighth of the limit, and at least 128 (half
// of a smaller limit), is kept for the agent's own files (queue, log,
// sockets to aggregators, refused connections being answered); the rest,
// at most maxTotalDefault, is the total cap. The per-address cap is a
// quarter of that, at most 1024.
func DefaultCaps(files uint64) (total, perIP int) {
	if files == 0 {
		files = unknownFileLimit
	}
	files = min(files, 1<<24) // "unlimited" is no count to divide
	reserve := max(files/8, min(128, files/2))
	total = min(max(int(files-reserve), 1), maxTotalDefault)
	perIP = min(max(total/4, 1), maxPerIPDefault)
	return total, perIP
}
