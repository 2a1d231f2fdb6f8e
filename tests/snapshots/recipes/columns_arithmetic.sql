WITH s0 AS (SELECT * FROM "sample"), s1 AS (SELECT *, "amount"::DOUBLE / nullif("has space"::DOUBLE, 0) AS "amount_ratio_has space" FROM s0) SELECT * FROM s1
