WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT *, (amount * 2 + "has space" - length(coalesce(country, ''))) AS "score ✓" FROM s0) SELECT * FROM s1
