// title: Executables run that were written during the window
// description: Dropped binaries: files written between two times and executed after they
// were written, with the writer and the process that ran them.
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (w:Process)-[wr:WROTE]->(f:File)<-[ex:EXECUTED]-(p:Process)
WHERE wr.first >= $since AND wr.first <= $until AND ex.last >= wr.first
RETURN f.path AS path, f.host AS host, w.cmdline AS writer, wr.first AS written,
       p.pid AS pid, p.cmdline AS command, ex.first AS executed
ORDER BY written, path, executed
