// title: Files written by an executable
// description: Files that processes running the given program wrote; the program is its
// full path (/usr/bin/sort) or its file name (sort).
// param: exe string -- a full path or a file name
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)-[w:WROTE]->(f:File)
WHERE (p.exe = $exe OR p.exe ENDS WITH ('/' + $exe)) AND w.last >= $since AND w.first <= $until
RETURN f.path AS path, f.host AS host, count(DISTINCT p) AS processes,
       min(w.first) AS first, max(w.last) AS last
ORDER BY first, path
