// title: The lineage of a file as a table
// description: Who wrote the file at or before a time, and what each writer had read
// before its last write (one step; `ursprung lineage` walks the whole upstream).
// param: path string -- the absolute path of the file
// param: as_of integer = 4611686018427387904 -- epoch nanoseconds
MATCH (f:File {path: $path})<-[w:WROTE]-(p:Process)
WHERE w.first <= $as_of
OPTIONAL MATCH (p)-[r:READ]->(src:File)
WHERE r.first <= w.last AND r.first <= $as_of
RETURN f.host AS host, p.pid AS pid, p.cmdline AS writer, w.first AS first_write,
       w.last AS last_write, src.path AS input, r.first AS read
ORDER BY first_write, pid, read, input
