WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT "quo""te", "amount", "id" FROM s0) SELECT * FROM s1
