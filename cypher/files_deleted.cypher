// title: Files deleted
// description: Files unlinked between two times, with the process that deleted them.
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)-[d:DELETED]->(f:File)
WHERE d.last >= $since AND d.first <= $until
RETURN f.path AS path, f.host AS host, p.pid AS pid, p.cmdline AS command,
       d.first AS deleted
ORDER BY deleted, path
