WITH s0 AS (SELECT * FROM "serve"), s1 AS (SELECT i."id" AS "id", CASE WHEN i."cïty ""name""" IS NULL THEN $p0_2::DOUBLE ELSE coalesce(m0."__quarry_value", $p0_3::DOUBLE) END AS "cïty ""name""_y_mean", i."n it's" AS "n it's", i."flag" AS "flag", i."y" AS "y", i."amount €" AS "amount €", i."customer" AS "customer"
FROM (SELECT * FROM s0) AS i
LEFT JOIN (SELECT unnest($p0_0::VARCHAR[]) AS "__quarry_key", unnest($p0_1::DOUBLE[]) AS "__quarry_value") AS m0 ON i."cïty ""name""" = m0."__quarry_key") SELECT * FROM s1
