// title: Runs of a pipeline and their outputs
// description: Every run of the pipeline (all pipelines when none is given), oldest first,
// with the files its processes wrote and did not delete.
// param: pipeline string = null -- the pipeline name; null for every pipeline
MATCH (r:PipelineRun)
WHERE $pipeline IS NULL OR r.pipeline = $pipeline
OPTIONAL MATCH (r)-[:INCLUDES]->(:Process)-[:WROTE]->(f:File)
WITH DISTINCT r, f
OPTIONAL MATCH (r)-[:INCLUDES]->(:Process)-[d:DELETED]->(f)
WITH r, f, count(d) AS deletions
ORDER BY f.path
RETURN r.id AS id, r.pipeline AS pipeline, r.command AS command, r.start AS start,
       r.end AS end, r.exit_code AS exit_code,
       collect(CASE WHEN deletions = 0 THEN f.path END) AS outputs
ORDER BY start, id
