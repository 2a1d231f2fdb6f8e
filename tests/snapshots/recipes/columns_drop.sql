WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT "id", "amount", "country", "has space", "quo""te", "select", "Mixed Case", "semi;colon", "numbers" FROM s0) SELECT * FROM s1
