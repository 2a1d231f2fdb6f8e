WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT * FROM s0 WHERE "amount" > $p0_0) SELECT * FROM s1
