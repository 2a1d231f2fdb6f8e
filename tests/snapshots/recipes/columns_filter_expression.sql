WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT * FROM s0 WHERE ((amount > 10 AND country IN ('US', '日本')) OR "has space" = 0)) SELECT * FROM s1
