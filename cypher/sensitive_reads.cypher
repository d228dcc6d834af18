// title: Processes that read a sensitive path
// description: Every process that read a file whose path contains the given text (for
// example /.ssh/ or /etc/shadow) between two times.
// param: path_contains string = "/etc/shadow" -- a substring of the path
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)-[r:READ]->(f:File)
WHERE f.path CONTAINS $path_contains AND r.last >= $since AND r.first <= $until
RETURN f.path AS path, p.host AS host, p.pid AS pid, p.uid AS uid, p.euid AS euid,
       p.cmdline AS command, r.first AS first, r.last AS last
ORDER BY first, path, pid
