WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT * FROM s0 QUALIFY row_number() OVER (PARTITION BY "country", "has space") = 1) SELECT * FROM s1
