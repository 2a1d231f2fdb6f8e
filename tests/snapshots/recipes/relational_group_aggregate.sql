WITH s0 AS (SELECT * FROM "events"), s1 AS (SELECT *, (avg(CASE WHEN isnan("v") THEN NULL ELSE "v" END) OVER (PARTITION BY "k1", "k2"))::DOUBLE AS "mean_v_per_k1_k2" FROM s0) SELECT * FROM s1
