// title: Connections to non-local addresses with the process tree behind them
// description: Processes that connected to or accepted from an address outside their
// host, with the command lines of their ancestors (oldest first).
// param: since integer = 0 -- epoch nanoseconds
// param: until integer = 4611686018427387904 -- epoch nanoseconds
MATCH (p:Process)-[c:CONNECTED|ACCEPTED]->(x:Endpoint)
WHERE x.host IS NULL AND c.last >= $since AND c.first <= $until
OPTIONAL MATCH (a:Process)-[:FORKED*1..20]->(p)
WITH p, c, x, a ORDER BY a.first
RETURN p.host AS host, p.pid AS pid, p.cmdline AS command, type(c) AS action,
       x.address AS address, x.port AS port, c.first AS first,
       collect(a.cmdline) AS ancestry
ORDER BY first, pid
